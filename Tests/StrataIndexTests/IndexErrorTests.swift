#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
@testable import StrataIndex

@Suite struct IndexErrorTests {
    /// A failed system call behind an index error stays its cause (errno and all), and the
    /// one line still names the file and the call.
    @Test func aSystemErrorIsKeptAsTheCause() {
        let failed = SystemError(code: ENOSPC, operation: "pwrite", path: "/cache/index/x.tmp")
        let e = IndexError("cache /cache: cannot write index for layer 1", wrapping: failed)
        #expect(e.cause == failed)
        #expect(e.description == "cache /cache: cannot write index for layer 1: /cache/index/x.tmp: pwrite: \(failed.message)")
        // Through another module's wrapping error, the same cause.
        struct Wrapper: SystemErrorWrapping { var message: String; var cause: SystemError? }
        let wrapped = IndexError("layer 2", wrapping: Wrapper(message: "blob b", cause: failed))
        #expect(wrapped.cause == failed)
        #expect(wrapped.description == "layer 2: blob b: \(failed.message)")
    }

    @Test func anyOtherErrorIsText() {
        struct Other: Error, CustomStringConvertible { var description: String { "bad header" } }
        let e = IndexError("layer 3", wrapping: Other())
        #expect(e.cause == nil)
        #expect(e.description == "layer 3: bad header")
    }
}
