#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// `strata bundle --remove` removes nothing while a container of runc still exists on the
/// bundle (running or stopped) or while anything uses the rootfs; `snapshot remove` and
/// `snapshot unmount` refuse a snapshot whose mount is in use. Every container a test starts
/// is deleted (`runc delete --force`), also on failure.
@Suite(.enabled(if: BundleTestSupport.available, "needs root, the strata binary, runc, umoci and busybox-static"),
       .serialized)
struct BundleRemoveSafetyTests {
    /// `runc run -d`: detached, its stdio on /dev/null (a pipe would be held by the container).
    static func runDetached(bundle: String, id: String) throws {
        let runc = ContainerRuntime.runc.path
        let r = try Command.run("/bin/sh", ["-c", "exec '\(runc)' run -d --bundle '\(bundle)' '\(id)' </dev/null >/dev/null 2>&1"])
        guard r.succeeded else { throw HarnessError("runc run -d \(id) failed (\(r.status))") }
    }

    static func status(of id: String) -> String? {
        guard let r = try? Command.run(ContainerRuntime.runc.path, ["state", id]), r.succeeded,
              let object = try? JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any] else { return nil }
        return object["status"] as? String
    }

    /// Everything `strata bundle` made is still there and mounted.
    static func expectIntact(_ bundle: StrataBundleFixture, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(Mounts.isMounted(bundle.rootfs), sourceLocation: sourceLocation)
        for name in ["config.json", "upper", "work", ".strata-bundle"] {
            #expect(FileIO.exists(bundle.directory + "/" + name), "\(name) was removed", sourceLocation: sourceLocation)
        }
    }

    @Test func aRunningContainerKeepsItsBundle() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["sleep", "600"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"))
        let id = ContainerRuntime.containerID("remove-running")
        defer { ContainerRuntime.runc.delete(id) }
        try Self.runDetached(bundle: bundle.directory, id: id)
        #expect(Self.status(of: id) == "running")

        let refused = try StrataBinary.run(["bundle", "--remove", bundle.directory])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains(id), "\(refused.stderr)")
        Self.expectIntact(bundle)
        // The container's root, a copy of the mount in its own namespace, counts as a use.
        let unmount = try StrataBinary.run(["unmount", bundle.rootfs])
        #expect(unmount.status == 1)
        #expect(unmount.stderr.contains("EBUSY: in use by PIDs"), "\(unmount.stderr)")
        #expect(Mounts.isMounted(bundle.rootfs))
        // The container still writes to its upper.
        let write = try Command.run(ContainerRuntime.runc.path, ["exec", id, "/bin/sh", "-c", "echo kept > /tmp/w && cat /tmp/w"])
        #expect(write.succeeded && write.stdoutString == "kept\n", "\(write.stderr)")

        ContainerRuntime.runc.delete(id)
        try bundle.remove()
        #expect(!FileIO.exists(bundle.directory))
    }

    /// A stopped container holds nothing open, but runc still has it: --remove waits for
    /// `runc delete`.
    @Test func aStoppedContainerKeepsItsBundle() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["/bin/sh", "-c", "exit 0"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"))
        let id = ContainerRuntime.containerID("remove-stopped")
        defer { ContainerRuntime.runc.delete(id) }
        try Self.runDetached(bundle: bundle.directory, id: id)
        try #require(Mounts.waitUntil(seconds: 60) { Self.status(of: id) == "stopped" })

        let refused = try StrataBinary.run(["bundle", "--remove", bundle.directory])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("in use by container \(id) (runc, stopped)"), "\(refused.stderr)")
        Self.expectIntact(bundle)

        ContainerRuntime.runc.delete(id)
        try bundle.remove()
        #expect(!FileIO.exists(bundle.directory))
    }

    /// A process outside any runtime with its working directory in the rootfs.
    @Test func aBusyRootfsKeepsItsBundle() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["id"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"))
        let sleeper = try BackgroundProcess("cd '\(bundle.rootfs)/tmp' && exec sleep 600")
        defer { sleeper.stop() }
        try #require(Mounts.waitUntil(seconds: 30) {
            UnmountSafetyTests.workingDirectory(of: sleeper.pid) == bundle.rootfs + "/tmp"
        })

        let refused = try StrataBinary.run(["bundle", "--remove", bundle.directory])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("EBUSY: in use by PIDs \(sleeper.pid)"), "\(refused.stderr)")
        Self.expectIntact(bundle)

        sleeper.stop()
        try bundle.remove()
        #expect(!FileIO.exists(bundle.directory))
    }
}

@Suite(.enabled(if: SafetyTestSupport.available, "needs root, /dev/fuse and the strata binary"), .serialized)
struct SnapshotUnmountSafetyTests {
    @Test func aSnapshotInUseIsNeitherUnmountedNorRemoved() throws {
        let store = try SnapshotStoreFixture()
        defer { try? store.close() }
        try store.check(["import", try SafetyTestSupport.smallImage(store.temp), "base"])
        try store.check(["prepare", "work", "base"])
        let rootfs = try store.mount("work")
        let fd = open(rootfs + "/etc/hello", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        var closed = false
        defer { if !closed { close(fd) } }

        let unmount = try store.run(["unmount", "work"])
        #expect(unmount.status == 1)
        #expect(unmount.stderr.contains("EBUSY: in use by PIDs \(getpid())"), "\(unmount.stderr)")
        #expect(Mounts.isMounted(rootfs))
        let remove = try store.run(["remove", "work"])
        #expect(remove.status == 1)
        #expect(remove.stderr.contains("EBUSY"), "\(remove.stderr)")
        #expect(Mounts.isMounted(rootfs))
        #expect(try store.run(["stat", "work"]).succeeded)

        close(fd)
        closed = true
        try store.check(["unmount", "work"])
        #expect(!Mounts.isMounted(rootfs))
        try store.check(["remove", "work"])
        #expect(!(try store.run(["stat", "work"])).succeeded)
    }
}
