#if canImport(Glibc)
import Glibc
#endif
import StrataHash
import StrataSystem
import StrataTestSupport
import Testing
@testable import StrataRemote

/// `strata status`'s transport: the mount's run directory and its status socket.
@Suite struct StatusServerTests {
    @Test func runDirectoryIsNamedForTheMountpoint() {
        let hex = SHA256Hasher.hex(of: Array("/mnt/app".utf8))
        let dir = MountRunDirectory(mountpointSHA256Hex: hex, base: "/run/strata/mounts")
        #expect(dir.path == "/run/strata/mounts/" + hex.prefix(16))
        #expect(dir.statusSocket == dir.path + "/status.sock")
        #expect(MountRunDirectory.base(euid: 0, runtimeDirectory: "/run/user/0") == "/run/strata/mounts")
        #expect(MountRunDirectory.base(euid: 1000, runtimeDirectory: "/run/user/1000") == "/run/user/1000/strata/mounts")
        #expect(MountRunDirectory.base(euid: 1000, runtimeDirectory: nil) == "/tmp/strata-1000/mounts")
        #expect(MountRunDirectory.base(euid: 1000, runtimeDirectory: "") == "/tmp/strata-1000/mounts")
    }

    @Test func statusRoundTripsAndStopRemovesTheSocket() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let base = temp.child("mounts")
        let status = MountStatus.local(mountpoint: "/mnt/x", reference: "/images/x:v1", manifestDigest: "sha256:" + String(repeating: "a", count: 64),
                                       layers: [(String(repeating: "b", count: 64), 1234)])
        let bytes = try status.encoded()
        let server = try StatusServer(mountpoint: "/mnt/x", base: base) { bytes }
        #expect(try StatusServer.query(mountpoint: "/mnt/x", base: base) == status)
        // Several clients, one after the other.
        #expect(try StatusServer.query(mountpoint: "/mnt/x", base: base).layers.first?.present == 1234)
        #expect(throws: StatusError.self) { try StatusServer.query(mountpoint: "/mnt/other", base: base) }
        server.stop()
        #expect(!FileIO.exists(server.socketPath))
        #expect(throws: StatusError.self) { try StatusServer.query(mountpoint: "/mnt/x", base: base) }
    }
}
