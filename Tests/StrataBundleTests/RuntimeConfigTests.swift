#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem
import StrataTestSupport
import Testing
@testable import StrataBundle

/// The config.json SpecConverter writes, run by real runtimes on a rootfs `umoci unpack`
/// extracted: checks the config alone, whatever the state of the mount.
@Suite(.enabled(if: BusyboxImage.isAvailable && ContainerRuntime.runc.isAvailable, "needs root, runc, umoci, busybox-static"),
       .serialized)
struct RuntimeConfigTests {
    /// Builds an image with `config`, unpacks it with umoci, writes our config.json over
    /// umoci's, runs it, and returns its stdout.
    func run(_ runtime: ContainerRuntime, config: [String], adjust: (inout RuntimeSpec) -> Void = { _ in }) throws -> String {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let layout = temp.child("layout")
        try BusyboxImage.make(layout: layout, tag: "t", config: config)
        let bundle = temp.child("bundle")
        let rootfs = try Umoci.unpack(layout: layout, tag: "t", into: bundle)
        let image = try ImageResolver.resolve(reference: layout + ":t")
        var spec = try SpecConverter.convert(config: image.config,
                                             passwd: try RootedFile.read(root: rootfs, path: "/etc/passwd"),
                                             group: try RootedFile.read(root: rootfs, path: "/etc/group"),
                                             readOnly: true)
        adjust(&spec)
        try FileIO.writeAtomically(bundle + "/config.json", try SpecJSON.encode(spec))
        let id = ContainerRuntime.containerID("config")
        defer { runtime.delete(id) }
        let result = try runtime.run(bundle: bundle, id: id)
        guard result.succeeded else {
            throw HarnessError("\(runtime) run failed (\(result.status)): \(result.stderr)\n\(result.stdoutString)")
        }
        return result.stdoutString
    }

    /// Every runtime: one that is missing is a recorded skip of its cases (requireAvailable).
    static var runtimes: [ContainerRuntime] { ContainerRuntime.allCases }

    @Test(arguments: runtimes)
    func defaultCommandEnvAndCwd(_ runtime: ContainerRuntime) throws {
        let out = try run(runtime, config: BusyboxImage.command(["/bin/sh", "-c", "cat /etc/hello; echo \"$GREETING\"; pwd; echo $PATH"])
                          + ["--config.env", "GREETING=hi there", "--config.workingdir", "/tmp"])
        #expect(out == "hello from the image\nhi there\n/tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
    }

    @Test(arguments: runtimes)
    func userByName(_ runtime: ContainerRuntime) throws {
        let out = try run(runtime, config: BusyboxImage.command(["id"]) + ["--config.user", "app"])
        // busybox id lists the supplementary groups only: staff and audio name app as a member.
        #expect(out == "uid=1000(app) gid=1000(app) groups=2000(staff),2001(audio)\n")
    }

    @Test(arguments: runtimes)
    func userByUIDAndGID(_ runtime: ContainerRuntime) throws {
        let out = try run(runtime, config: BusyboxImage.command(["id"]) + ["--config.user", "1001:2000"])
        // A group given: no supplementary groups (conversion.md), though staff lists svc.
        #expect(out == "uid=1001(svc) gid=2000(staff)\n")
    }

    /// The xattr is what is under test, so the config lets file capabilities work: with
    /// runc's default noNewPrivileges a file capability cannot raise a non-root process's
    /// permitted set, and runc's default (no inheritable set) gives it no ambient ones. A
    /// non-root process then has no capabilities, except through /bin/busybox-cap.
    @Test(arguments: runtimes)
    func fileCapabilityReachesTheProcess(_ runtime: ContainerRuntime) throws {
        let out = try run(runtime, config: BusyboxImage.command(["/bin/sh", "-c", "grep CapPrm /proc/self/status; /bin/busybox-cap grep CapPrm /proc/self/status"])
                          + ["--config.user", "app"], adjust: { $0.process.noNewPrivileges = false })
        #expect(out == "CapPrm:\t0000000000000000\nCapPrm:\t0000000000000400\n")
    }
}
