#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataTestSupport
import Testing

enum SetuidTestSupport {
    static var available: Bool { BundleTestSupport.available && access(Mounts.tool("gcc"), X_OK) == 0 }

    /// A static program printing its real and effective uid, compiled for the test.
    static func compileEuid(_ temp: TempDirectory) throws -> String {
        let source = temp.child("euid.c")
        try FileIO.writeAtomically(source, Array("""
            #include <stdio.h>
            #include <unistd.h>
            int main(void) { printf("euid=%d uid=%d\\n", (int)geteuid(), (int)getuid()); return 0; }

            """.utf8))
        let binary = temp.child("euid")
        try Command.check(Mounts.tool("gcc"), ["-static", "-O2", "-o", binary, source], timeout: 120)
        return binary
    }

    /// The busybox image with /bin/euid setuid root, run by user app (1000).
    static func image(_ temp: TempDirectory) throws -> String {
        let program = try compileEuid(temp)
        let config = BusyboxImage.command(["/bin/euid"]) + ["--config.user", "app"]
        return try BusyboxImage.make(layout: temp.child("layout"), config: config) { rootfs in
            try Command.check("/bin/cp", [program, rootfs + "/bin/euid"])
            guard chown(rootfs + "/bin/euid", 0, 0) == 0, chmod(rootfs + "/bin/euid", 0o4755) == 0 else {
                throw SystemError(code: errno, operation: "chmod", path: rootfs + "/bin/euid")
            }
        }
    }
}

/// Container roots are mounted `suid` (and still `nodev`), so a setuid-root program in the
/// image raises a non-root user to euid 0 under a runtime, as it does on kernel overlayfs.
/// A plain `strata mount` stays `nosuid` unless given --suid.
@Suite(.mountTimeLimit, .enabled(if: SetuidTestSupport.available, "needs root, the strata binary, runc, umoci, busybox-static and gcc"),
       .serialized)
struct SetuidTests {

    @Test(arguments: BundleTestSupport.runtimes)
    func setuidRootProgramGainsRootInAContainer(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let bundle = try StrataBundleFixture(image: try SetuidTestSupport.image(temp), directory: temp.child("bundle"))
        defer { try? bundle.remove() }
        let options = try #require(SafetyTestSupport.mountOptions(bundle.rootfs))
        #expect(!options.contains("nosuid"), "\(options)")
        #expect(options.contains("nodev"), "\(options)")
        // config.json as strata bundle wrote it: noNewPrivileges is off, as containerd leaves it.
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, bundle), "euid=0 uid=1000\n", runtime)
        try bundle.remove()
    }

    @Test func plainMountIsNosuidUnlessAsked() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try SafetyTestSupport.smallImage(temp)
        let plain = try MountGuard(image: image, mountpoint: temp.child("plain"), extraArgs: ["--cache", temp.child("cache")])
        defer { try? plain.unmount() }
        let suid = try MountGuard(image: image, mountpoint: temp.child("suid"), extraArgs: ["--cache", temp.child("cache"), "--suid"])
        defer { try? suid.unmount() }
        let plainOptions = try #require(SafetyTestSupport.mountOptions(plain.mountpoint))
        #expect(plainOptions.contains("nosuid") && plainOptions.contains("nodev"), "\(plainOptions)")
        let suidOptions = try #require(SafetyTestSupport.mountOptions(suid.mountpoint))
        #expect(!suidOptions.contains("nosuid") && suidOptions.contains("nodev"), "\(suidOptions)")
        #expect(try StrataBinary.run(["mount", "--help"]).stdoutString.contains("--suid"))
        try plain.unmount()
        try suid.unmount()
    }

    @Test func snapshotMountsAreSuid() throws {
        let store = try SnapshotStoreFixture()
        defer { try? store.close() }
        try store.check(["import", try SafetyTestSupport.smallImage(store.temp), "base"])
        try store.check(["prepare", "work", "base"])
        let options = try #require(SafetyTestSupport.mountOptions(try store.mount("work")))
        #expect(!options.contains("nosuid") && options.contains("nodev"), "\(options)")
        try store.close()
    }
}
