#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// `strata bundle` made bundles, run by runc and crun: the image's command runs from the
/// lazily mounted rootfs, users resolve, file capabilities arrive, writes land in the upper.
/// Every test removes its bundle (unmounting it) and deletes its containers, also on failure.

/// A bundle made by `strata bundle ARGS... IMAGE DIR`, removed by `remove()` or, failing
/// that, by deinit (then forcibly: a failed expectation must not leave a mount behind).
final class StrataBundleFixture {
    let directory: String
    let result: CommandResult
    private(set) var removed = false

    init(image: String, directory: String, args: [String] = []) throws {
        self.directory = directory
        result = try StrataBinary.run(["bundle"] + args + [image, directory], timeout: 120)
        guard result.succeeded else {
            removed = true
            throw HarnessError("strata bundle \((args + [image, directory]).joined(separator: " ")) failed (\(result.status)): \(result.stderr)")
        }
    }

    var rootfs: String { directory + "/rootfs" }

    /// `strata bundle --remove DIR`, checked.
    func remove() throws {
        guard !removed else { return }
        removed = true
        let r = try StrataBinary.run(["bundle", "--remove", directory])
        if !r.succeeded {
            try? Mounts.forceUnmount(rootfs)
            throw HarnessError("strata bundle --remove \(directory) failed (\(r.status)): \(r.stderr)")
        }
    }

    /// config.json as a dictionary, to read or to patch for a test.
    func config() throws -> [String: Any] {
        try jsonObject(try FileIO.readAll(directory + "/config.json"))
    }

    func writeConfig(_ object: [String: Any]) throws {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        try FileIO.writeAtomically(directory + "/config.json", Array(data))
    }

    deinit {
        if !removed {
            _ = try? StrataBinary.run(["bundle", "--remove", directory])
            if Mounts.isMounted(rootfs) { try? Mounts.forceUnmount(rootfs) }
        }
    }
}

enum BundleTestSupport {
    static var available: Bool {
        StrataBinary.isBuilt && BusyboxImage.isAvailable && ContainerRuntime.runc.isAvailable
    }

    /// Every runtime: each test calls `requireAvailable()`, so a missing one is a recorded skip.
    static var runtimes: [ContainerRuntime] { ContainerRuntime.allCases }

    /// Makes the bundle's container meet another one: env NAME and OTHER, and `shared` (a host
    /// directory) bind-mounted at /tmp, where `meet` leaves NAME and waits for OTHER.
    static func prepareToMeet(_ bundle: StrataBundleFixture, name: String, other: String, shared: String) throws {
        var config = try bundle.config()
        var process: [String: Any] = try field(config, "process")
        process["env"] = (try field(process, "env", as: [String].self)) + ["NAME=\(name)", "OTHER=\(other)"]
        config["process"] = process
        let mounts = config["mounts"] as? [[String: Any]] ?? []
        config["mounts"] = mounts + [["destination": "/tmp", "type": "bind", "source": shared, "options": ["rbind", "rw"]]]
        try bundle.writeConfig(config)
    }

    /// Shell for a container that must run at the same time as OTHER: each leaves its marker and
    /// waits for the other's, so both finish only if both were running at once. Not a timing
    /// check: the 40 s wait only ends a run that never met (exit 3), it measures nothing.
    static let meet = #"touch /tmp/$NAME; n=0; while [ ! -e /tmp/$OTHER ]; do n=$((n+1)); [ $n -le 400 ] || { echo "$NAME never saw $OTHER" >&2; exit 3; }; sleep 0.1; done"#

    /// Runs the bundle's container to its end with a fresh ID, deleting it afterwards.
    static func run(_ runtime: ContainerRuntime, _ bundle: StrataBundleFixture, name: String = "run") throws -> CommandResult {
        let id = ContainerRuntime.containerID(name)
        defer { runtime.delete(id) }
        return try runtime.run(bundle: bundle.directory, id: id)
    }

    static func expectOutput(_ result: CommandResult, _ expected: String, _ runtime: ContainerRuntime,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(result.succeeded, "\(runtime): status \(result.status): \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdoutString == expected, "\(runtime)", sourceLocation: sourceLocation)
    }
}

@Suite(.enabled(if: BundleTestSupport.available, "needs root, the strata binary, runc, umoci and busybox-static"),
       .serialized, .mountTimeLimit)
struct BundleRuntimeTests {
    @Test(arguments: BundleTestSupport.runtimes)
    func defaultCommandRunsReadOnly(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(
            ["/bin/sh", "-c", "cat /etc/hello; echo \"$GREETING\"; pwd; hostname; touch /etc/x 2>/dev/null || echo read-only"])
            + ["--config.env", "GREETING=hi", "--config.workingdir", "/tmp"])
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"), args: ["--read-only"])
        #expect((try bundle.config()["root"] as? [String: Any])?["readonly"] as? Bool == true)
        let result = try BundleTestSupport.run(runtime, bundle)
        // No Hostname in the config: the container keeps the host's name in its own uts namespace.
        let host = try Command.check("/bin/hostname", []).stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)
        BundleTestSupport.expectOutput(result, "hello from the image\nhi\n/tmp\n\(host)\nread-only\n", runtime)
        try bundle.remove()
        #expect(!FileIO.exists(temp.child("bundle")))
    }

    @Test(arguments: BundleTestSupport.runtimes)
    func usersResolveThroughTheImage(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let layout = temp.child("layout")
        let byName = try BusyboxImage.make(layout: layout, tag: "name", config: BusyboxImage.command(["id"]) + ["--config.user", "app"])
        let byIDs = try BusyboxImage.make(layout: layout, tag: "ids", config: BusyboxImage.command(["id"]) + ["--config.user", "1001:2000"])
        let a = try StrataBundleFixture(image: byName, directory: temp.child("a"), args: ["--read-only"])
        let b = try StrataBundleFixture(image: byIDs, directory: temp.child("b"), args: ["--read-only"])
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, a),
                                       "uid=1000(app) gid=1000(app) groups=2000(staff),2001(audio)\n", runtime)
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, b), "uid=1001(svc) gid=2000(staff)\n", runtime)
        try a.remove()
        try b.remove()
    }

    /// security.capability of /bin/busybox-cap, served by the mount, raises the permitted set
    /// of a non-root process: the bundle's config.json leaves noNewPrivileges off for that.
    @Test(arguments: BundleTestSupport.runtimes)
    func fileCapabilityReachesTheContainer(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(
            ["/bin/sh", "-c", "grep CapPrm /proc/self/status; /bin/busybox-cap grep CapPrm /proc/self/status"]) + ["--config.user", "app"])
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"), args: ["--read-only"])
        let process: [String: Any] = try field(try bundle.config(), "process")
        #expect(process["noNewPrivileges"] as? Bool == false)
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, bundle),
                                       "CapPrm:\t0000000000000000\nCapPrm:\t0000000000000400\n", runtime)
        try bundle.remove()
    }

    @Test func annotationsAndProcessComeFromTheImageConfig() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: [
            "--config.entrypoint", "/bin/echo", "--config.cmd", "a/b", "--config.env", "PATH=/bin",
            "--config.label", "com.example.k=v", "--config.label", "org.opencontainers.image.author=label",
            "--config.stopsignal", "SIGQUIT", "--config.exposedports", "8080/tcp", "--config.exposedports", "53/udp",
            "--author", "someone", "--created", "2024-01-02T03:04:05Z",
        ])
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"), args: ["--read-only"])
        let config = try bundle.config()
        let p = "org.opencontainers.image."
        let annotations = config["annotations"] as? [String: String] ?? [:]
        #expect(annotations["com.example.k"] == "v")
        #expect(annotations[p + "author"] == "label")   // the label wins over the author field
        #expect(annotations[p + "stopSignal"] == "SIGQUIT")
        #expect(annotations[p + "exposedPorts"] == "53/udp,8080/tcp")
        #expect(annotations[p + "created"] == "2024-01-02T03:04:05Z")
        #expect(annotations[p + "os"] == "linux")
        let process = config["process"] as? [String: Any] ?? [:]
        #expect(process["args"] as? [String] == ["/bin/echo", "a/b"])
        #expect(process["env"] as? [String] == ["PATH=/bin", "TERM=xterm", "HOME=/root"])
        #expect(process["terminal"] as? Bool == false)
        #expect((config["root"] as? [String: Any])?["path"] as? String == "rootfs")
        // The file is written for people too: sorted, indented, '/' not escaped.
        let text = String(decoding: try FileIO.readAll(bundle.directory + "/config.json"), as: UTF8.self)
        #expect(text.contains("\"a/b\"") && !text.contains("\\/"))
        try bundle.remove()
    }

    @Test func secondBundleOnTheSameDirectoryIsAnError() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["true"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"), args: ["--read-only"])
        let again = try StrataBinary.run(["bundle", "--read-only", image, bundle.directory])
        #expect(again.status == 1)
        #expect(again.stderr.hasPrefix("strata: ") && again.stderr.contains("already a strata bundle"), "\(again.stderr)")
        #expect(again.stderr.split(separator: "\n").count == 1)
        #expect(MountTable.mountPoints().filter { $0 == bundle.rootfs }.count == 1)
        try bundle.remove()
        #expect(!Mounts.isMounted(bundle.rootfs))
    }

    @Test func failedBundleLeavesNothingBehind() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["id"]) + ["--config.user", "ghost"])
        let dir = temp.child("bundle")
        let r = try StrataBinary.run(["bundle", "--read-only", image, dir])
        defer { if Mounts.isMounted(dir + "/rootfs") { try? Mounts.forceUnmount(dir + "/rootfs") } }
        #expect(r.status == 1)
        #expect(r.stderr.contains("config.User \"ghost\""), "\(r.stderr)")
        #expect(!Mounts.isMounted(dir + "/rootfs"))
        #expect(!FileIO.exists(dir))
    }


    /// Two bundles of one image, two mounts, two containers (runc and crun) running at the
    /// same time: each waits for the other's marker, so both succeed only if they overlapped.
    @Test func twoReadOnlyBundlesOfOneImageRunAtOnce() throws {
        try ContainerRuntime.crun.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(
            ["/bin/sh", "-c", BundleTestSupport.meet + "; cat /etc/hello"]))
        let a = try StrataBundleFixture(image: image, directory: temp.child("a"), args: ["--read-only"])
        let b = try StrataBundleFixture(image: image, directory: temp.child("b"), args: ["--read-only"])
        let shared = try temp.makeDirectory("shared")
        try BundleTestSupport.prepareToMeet(a, name: "a", other: "b", shared: shared)
        try BundleTestSupport.prepareToMeet(b, name: "b", other: "a", shared: shared)
        let results = try runConcurrently([
            { try BundleTestSupport.run(.runc, a, name: "ro-a") },
            { try BundleTestSupport.run(.crun, b, name: "ro-b") },
        ])
        BundleTestSupport.expectOutput(results[0], "hello from the image\n", .runc)
        BundleTestSupport.expectOutput(results[1], "hello from the image\n", .crun)
        #expect(FileIO.exists(shared + "/a") && FileIO.exists(shared + "/b"))
        try a.remove()
        try b.remove()
    }
}

/// Bundles with a writable upper.
@Suite(.enabled(if: BundleTestSupport.available, "needs root, the strata binary, runc, umoci and busybox-static"),
       .serialized, .mountTimeLimit)
struct BundleUpperTests {
    @Test func removeKeepsAUserGivenUpper() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["/bin/sh", "-c", "echo kept > /kept"]))
        let upper = temp.child("my-upper")
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"), args: ["--upper", upper])
        BundleTestSupport.expectOutput(try BundleTestSupport.run(.runc, bundle), "", .runc)
        try bundle.remove()
        #expect(!FileIO.exists(temp.child("bundle")))
        #expect(try FileIO.readAll(upper + "/kept") == Array("kept\n".utf8))
    }

    @Test(arguments: BundleTestSupport.runtimes)
    func writesLandInTheUpperAndOutliveTheContainer(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(
            ["/bin/sh", "-c", "test -f /data/note && cat /data/note || (mkdir -p /data && echo written > /data/note && echo first)"]))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"))
        #expect((try bundle.config()["root"] as? [String: Any])?["readonly"] as? Bool == false)
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, bundle, name: "first"), "first\n", runtime)
        #expect(try FileIO.readAll(bundle.directory + "/upper/data/note") == Array("written\n".utf8))
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, bundle, name: "second"), "written\n", runtime)
        try bundle.remove()
        #expect(!FileIO.exists(temp.child("bundle")))
    }

    /// Each container writes its name, waits until the other one has written too (markers, so
    /// they provably overlap), and reads its own name back from its own upper.
    @Test func twoBundlesOfOneImageRunAtOnceEachWithItsUpper() throws {
        try ContainerRuntime.crun.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(
            ["/bin/sh", "-c", "echo $NAME > /who; " + BundleTestSupport.meet + "; cat /who"]))
        let a = try StrataBundleFixture(image: image, directory: temp.child("a"))
        let b = try StrataBundleFixture(image: image, directory: temp.child("b"))
        let shared = try temp.makeDirectory("shared")
        try BundleTestSupport.prepareToMeet(a, name: "a", other: "b", shared: shared)
        try BundleTestSupport.prepareToMeet(b, name: "b", other: "a", shared: shared)
        // One container per bundle, at the same time, one with each runtime.
        let results = try runConcurrently([
            { try BundleTestSupport.run(.runc, a, name: "both") },
            { try BundleTestSupport.run(.crun, b, name: "both") },
        ])
        BundleTestSupport.expectOutput(results[0], "a\n", .runc)
        BundleTestSupport.expectOutput(results[1], "b\n", .crun)
        #expect(try FileIO.readAll(a.directory + "/upper/who") == Array("a\n".utf8))
        #expect(try FileIO.readAll(b.directory + "/upper/who") == Array("b\n".utf8))
        try a.remove()
        try b.remove()
    }
}

/// Runs each job on its own thread, all at once (a thread pool may run them one after the
/// other on a small machine); results in order.
func runConcurrently(_ jobs: [() throws -> CommandResult]) throws -> [CommandResult] {
    let box = ResultBox(jobs.count)
    for (i, job) in jobs.enumerated() {
        nonisolated(unsafe) let job = job
        box.group.enter()
        Thread.detachNewThread {
            box.set(i, Result { try job() })
            box.group.leave()
        }
    }
    box.group.wait()
    return try box.results.map { try $0!.get() }
}

private final class ResultBox: @unchecked Sendable {
    private(set) var results: [Result<CommandResult, Error>?]
    let group = DispatchGroup()
    private let lock = NSLock()
    init(_ n: Int) { results = Array(repeating: nil, count: n) }
    func set(_ i: Int, _ r: Result<CommandResult, Error>) { lock.lock(); results[i] = r; lock.unlock() }
}
