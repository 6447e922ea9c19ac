#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// `strata bundle --remove` removes nothing while runc or crun still has a container on the
/// bundle (running or stopped) or while anything uses the rootfs; `snapshot remove` and
/// `snapshot unmount` refuse a snapshot whose mount is in use. Every container a test starts
/// is deleted (`delete --force`), also on failure.
@Suite(.mountTimeLimit, .enabled(if: BundleTestSupport.available, "needs root, the strata binary, runc, umoci and busybox-static"),
       .serialized)
struct BundleRemoveSafetyTests {
    /// `RUNTIME ARGS...` through a shell, stdio on /dev/null unless `output` (a detached
    /// container would hold a pipe open). crun on a hybrid cgroup layout with cgroup2
    /// controllers runs as ContainerRuntime runs it: in a private mount namespace without
    /// /sys/fs/cgroup/unified.
    static func invoke(_ runtime: ContainerRuntime, _ args: [String], output: Bool = false) throws -> CommandResult {
        let words = ([runtime.path] + args).map { "'\($0)'" }.joined(separator: " ")
        let script = "exec " + words + (output ? "" : " </dev/null >/dev/null 2>&1")
        if runtime == .crun && hybridWithV2Controllers {
            return try Command.run(Mounts.tool("unshare"), ["--mount", "--propagation", "private", "/bin/sh", "-c",
                                                            "umount -l /sys/fs/cgroup/unified && " + script])
        }
        return try Command.run("/bin/sh", ["-c", script])
    }

    static var hybridWithV2Controllers: Bool {
        guard let bytes = try? FileIO.readAll("/sys/fs/cgroup/unified/cgroup.controllers") else { return false }
        return bytes.contains { $0 > 0x20 }
    }

    static func runDetached(_ runtime: ContainerRuntime, bundle: String, id: String) throws {
        let r = try invoke(runtime, ["run", "-d", "--bundle", bundle, id])
        guard r.succeeded else { throw HarnessError("\(runtime) run -d \(id) failed (\(r.status))") }
    }

    static func status(_ runtime: ContainerRuntime, of id: String) -> String? {
        guard let r = try? invoke(runtime, ["state", id], output: true), r.succeeded,
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

    @Test(arguments: BundleTestSupport.runtimes)
    func aRunningContainerKeepsItsBundle(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["sleep", "600"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"))
        let id = ContainerRuntime.containerID("remove-running")
        defer { runtime.delete(id) }
        try Self.runDetached(runtime, bundle: bundle.directory, id: id)
        #expect(Self.status(runtime, of: id) == "running")

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
        let write = try Self.invoke(runtime, ["exec", id, "/bin/sh", "-c", "echo kept > /tmp/w && cat /tmp/w"], output: true)
        #expect(write.succeeded && write.stdoutString == "kept\n", "\(write.stderr)")

        runtime.delete(id)
        try bundle.remove()
        #expect(!FileIO.exists(bundle.directory))
    }

    /// A stopped container holds nothing open, but the runtime still has it: --remove waits
    /// for `delete`.
    @Test(arguments: BundleTestSupport.runtimes)
    func aStoppedContainerKeepsItsBundle(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["/bin/sh", "-c", "exit 0"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"))
        let id = ContainerRuntime.containerID("remove-stopped")
        defer { runtime.delete(id) }
        try Self.runDetached(runtime, bundle: bundle.directory, id: id)
        try #require(Mounts.waitUntil(seconds: 60) { Self.status(runtime, of: id) == "stopped" })

        let refused = try StrataBinary.run(["bundle", "--remove", bundle.directory])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("in use by container \(id) (\(runtime), stopped)"), "\(refused.stderr)")
        Self.expectIntact(bundle)

        runtime.delete(id)
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

@Suite(.mountTimeLimit, .enabled(if: SafetyTestSupport.available, "needs root, /dev/fuse and the strata binary"), .serialized)
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
