#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import StrataFuse

/// The poll a server loop makes before it blocks (`RequestSpin`), on a pipe standing in for
/// /dev/fuse.
@Suite struct RequestSpinTests {
    @Test func seesARequestWaitingAndGivesUpWhenNoneComes() throws {
        var fds: [Int32] = [0, 0]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        #expect(!RequestSpin.await(fds[0], budget: .microseconds(200)))   // nothing to read
        #expect(!RequestSpin.await(fds[0], budget: .zero))
        var byte: UInt8 = 1
        #expect(write(fds[1], &byte, 1) == 1)
        #expect(RequestSpin.await(fds[0], budget: .seconds(30)))
        #expect(!RequestSpin.await(fds[0], budget: .zero))   // a zero budget does not poll at all
    }
}
