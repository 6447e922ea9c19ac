import Testing
import Glibc
@testable import StrataSystem

/// fchmodat2 and the *xattrat calls act on what a descriptor names, O_PATH ones included,
/// without /proc (issue 10, point 10). Linux 6.6 and 6.13; ENOSYS before.
@Suite(.enabled(if: getuid() == 0, "trusted.* xattrs need root"))
struct DescriptorCallTests {
    let dir = "/tmp/strata-descriptor-calls-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"

    @Test func chmodAndXattrsThroughPathDescriptors() throws {
        try FileIO.makeDirectories(dir)
        defer { _ = system("rm -rf '\(dir)'") }
        try FileIO.writeAtomically(dir + "/f", [1])
        #expect(symlink("f", dir + "/l") == 0)
        let d = open(dir, LinuxCalls.openPath | O_DIRECTORY | O_CLOEXEC)
        let f = openat(d, "f", LinuxCalls.openPath | O_NOFOLLOW | O_CLOEXEC)
        defer { close(f); close(d) }
        try #require(d >= 0 && f >= 0)

        #expect(LinuxCalls.fchmodat2(f, "", 0o600, LinuxCalls.atEmptyPath) == 0)
        #expect(LinuxCalls.fchmodat2(d, "f", 0o640, AT_SYMLINK_NOFOLLOW) == 0)
        var st = stat()
        #expect(stat(dir + "/f", &st) == 0 && st.st_mode & 0o7777 == 0o640)
        // A symlink has no mode to change, and the call says so rather than follow it.
        #expect(LinuxCalls.fchmodat2(d, "l", 0o600, AT_SYMLINK_NOFOLLOW) == -1 && errno == EOPNOTSUPP)

        // On the symlink itself, by name; on the directory, as ".".
        #expect(LinuxCalls.setxattrat(d, "l", AT_SYMLINK_NOFOLLOW, "trusted.k", "vv", 2, 0) == 0)
        #expect(LinuxCalls.setxattrat(d, ".", 0, "trusted.d", "x", 1, LinuxCalls.xattrCreate) == 0)
        #expect(LinuxCalls.setxattrat(d, ".", 0, "trusted.d", "x", 1, LinuxCalls.xattrCreate) == -1 && errno == EEXIST)
        var buffer = [UInt8](repeating: 0, count: 16)
        #expect(LinuxCalls.getxattrat(d, "l", AT_SYMLINK_NOFOLLOW, "trusted.k", &buffer, buffer.count) == 2)
        #expect(Array(buffer[0..<2]) == Array("vv".utf8))
        #expect(LinuxCalls.getxattrat(d, "f", AT_SYMLINK_NOFOLLOW, "trusted.k", nil, 0) == -1 && errno == ENODATA)
        let names = try LinuxCalls.sizedXattrQuery(operation: "listxattrat") { LinuxCalls.listxattrat(d, "l", AT_SYMLINK_NOFOLLOW, $0, $1) }
        #expect(names.map { String(decoding: $0, as: UTF8.self) } == "trusted.k\0")
        #expect(LinuxCalls.removexattrat(d, "l", AT_SYMLINK_NOFOLLOW, "trusted.k") == 0)
        #expect(LinuxCalls.getxattrat(d, "l", AT_SYMLINK_NOFOLLOW, "trusted.k", nil, 0) == -1 && errno == ENODATA)
    }
}
