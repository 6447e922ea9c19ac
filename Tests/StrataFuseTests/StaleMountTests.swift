#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import StrataFuse
import StrataFS

@Suite("Stale mounts (a daemon that died)", .timeLimit(.minutes(10)))
struct StaleMountTests {
    /// Mounts a FUSE filesystem by hand and closes its /dev/fuse descriptor at once: the kernel
    /// aborts the connection and leaves a mount that answers ENOTCONN, as after a SIGKILL.
    private func makeStaleMount() throws -> String {
        let path = try makeTestDirectory("strata-fuse-stale-")
        let fd = open("/dev/fuse", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw FSError(errno) }
        let data = "fd=\(fd),rootmode=40000,user_id=0,group_id=0"
        let rc = mount("strata-stale", path, "fuse.strata", 0, data)
        let code = errno
        close(fd)
        guard rc == 0 else { rmdir(path); throw FSError(code) }
        return path
    }

    @Test("unmount clears a stale mount; mounting over one is a clear error")
    func staleMount() throws {
        let path = try makeStaleMount()
        defer {
            if FuseMount.isMounted(path) { _ = umount2(path, Int32(MNT_DETACH)) }
            rmdir(path)
        }
        #expect(FuseMount.isMounted(path))
        var st = stat()
        errno = 0
        #expect(stat(path, &st) == -1)
        #expect(errno == ENOTCONN)
        do {
            _ = try FuseServer(fileSystem: MemoryFileSystem(), mountpoint: path, options: FuseMountOptions())
            Issue.record("accepted a stale mountpoint")
        } catch let error as FuseError {
            #expect(error.kind == .staleMount)
            #expect(error.description.contains(path))
        }
        try FuseMount.unmount(path)
        #expect(!FuseMount.isMounted(path))
        #expect(stat(path, &st) == 0)
    }
}
