#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// `strata bundle` options as `podman run` and `umoci unpack` users expect them (issue 15,
/// point 6), run under runc and crun.
@Suite(.enabled(if: BundleTestSupport.available, "needs root, the strata binary, runc, umoci and busybox-static"),
       .serialized, .mountTimeLimit)
struct BundleOptionsRuntimeTests {
    /// Every option at once, on an image that names no command: `-- CMD` supplies it.
    @Test(arguments: BundleTestSupport.runtimes)
    func optionsReplaceTheImagesConfig(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"),
                                          config: ["--clear=config.entrypoint", "--clear=config.cmd", "--config.env", "GREETING=image",
                                                   "--config.workingdir", "/etc"])
        let shared = try temp.makeDirectory("shared")
        try FileIO.writeAtomically(shared + "/f", bytes("from the host\n"))
        let script = #"echo "$GREETING $EXTRA"; pwd; id; hostname; cat /data/f; echo "$HOME $TERM"; touch /data/x 2>/dev/null || echo read-only"#
        // StrataBundleFixture puts IMAGE BUNDLE last; the command follows them, so strata runs directly.
        let made = try StrataBinary.run(["bundle", "--env", "GREETING=option", "--env=EXTRA=more",
                                         "--workdir", "/tmp", "--user", "app", "--hostname", "box",
                                         "--mount", "\(shared):/data:ro", image, temp.child("b2"), "--", "/bin/sh", "-c", script])
        #expect(made.succeeded, "\(made.stderr)")
        defer { _ = try? StrataBinary.run(["bundle", "--remove", temp.child("b2")]) }
        let result = try BundleTestSupport.run(runtime, directory: temp.child("b2"))
        BundleTestSupport.expectOutput(result, """
            option more
            /tmp
            uid=1000(app) gid=1000(app) groups=2000(staff),2001(audio)
            box
            from the host
            /home/app xterm
            read-only

            """, runtime)
        #expect(!FileIO.exists(shared + "/x"))
        let removed = try StrataBinary.run(["bundle", "--remove", temp.child("b2")])
        #expect(removed.succeeded, "\(removed.stderr)")
    }

    /// No command anywhere: `sh`, as umoci, with a note; `--tty` shows in config.json only
    /// (the tests have no terminal to run it with).
    @Test(arguments: BundleTestSupport.runtimes)
    func imageWithoutCommandRunsSh(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: ["--clear=config.entrypoint", "--clear=config.cmd"])
        let made = try StrataBinary.run(["bundle", "--read-only", image, temp.child("bundle")])
        #expect(made.succeeded, "\(made.stderr)")
        defer { _ = try? StrataBinary.run(["bundle", "--remove", temp.child("bundle")]) }
        #expect(made.stderr.contains("note") && made.stderr.contains("sh"), "\(made.stderr)")
        let config = try jsonObject(try FileIO.readAll(temp.child("bundle/config.json")))
        let process: [String: Any] = try field(config, "process")
        #expect(process["args"] as? [String] == ["sh"])
        #expect(process["terminal"] as? Bool == false)
        #expect((process["env"] as? [String])?.suffix(2) == ["TERM=xterm", "HOME=/root"])
        // sh with no terminal reads the empty stdin and exits 0.
        let result = try BundleTestSupport.run(runtime, directory: temp.child("bundle"))
        #expect(result.succeeded, "\(runtime): status \(result.status): \(result.stderr)")
        let removed = try StrataBinary.run(["bundle", "--remove", temp.child("bundle")])
        #expect(removed.succeeded, "\(removed.stderr)")

        let tty = try StrataBinary.run(["bundle", "--read-only", "--tty", image, temp.child("tty")])
        #expect(tty.succeeded, "\(tty.stderr)")
        defer { _ = try? StrataBinary.run(["bundle", "--remove", temp.child("tty")]) }
        let ttyProcess: [String: Any] = try field(try jsonObject(try FileIO.readAll(temp.child("tty/config.json"))), "process")
        #expect(ttyProcess["terminal"] as? Bool == true)
    }

    @Test func badOptionsAreUsageErrors() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["true"]))
        for (args, expected) in [(["--env", "NOEQUALS"], "--env"), (["--mount", "/nonexistent-strata:/x"], "does not exist"),
                                 (["--workdir", "relative"], "--workdir"), (["--user", "ghost"], "ghost")] {
            let r = try StrataBinary.run(["bundle", "--read-only"] + args + [image, temp.child("b")])
            #expect(!r.succeeded && r.stderr.contains(expected), "\(args): \(r.stderr)")
            #expect(!FileIO.exists(temp.child("b")), "\(args)")
        }
        // A read-only rootfs cannot get a mount point the image lacks: refused before the runtime fails.
        let shared = try temp.makeDirectory("shared")
        let missing = try StrataBinary.run(["bundle", "--read-only", "--mount", "\(shared):/nowhere", image, temp.child("b")])
        #expect(!missing.succeeded && missing.stderr.contains("/nowhere does not exist in the image"), "\(missing.stderr)")
        #expect(!FileIO.exists(temp.child("b")))
        let existing = try StrataBinary.run(["bundle", "--read-only", "--mount", "\(shared):/tmp", image, temp.child("b")])
        #expect(existing.succeeded, "\(existing.stderr)")
        _ = try? StrataBinary.run(["bundle", "--remove", temp.child("b")])
        let empty = try StrataBinary.run(["bundle", image, temp.child("b"), "--"])
        #expect(!empty.succeeded && empty.stderr.contains("no command"), "\(empty.stderr)")
    }
}

extension BundleTestSupport {
    /// Runs the container of the bundle in `directory` with a fresh ID, deleting it afterwards.
    static func run(_ runtime: ContainerRuntime, directory: String, name: String = "run") throws -> CommandResult {
        let id = ContainerRuntime.containerID(name)
        defer { runtime.delete(id) }
        return try runtime.run(bundle: directory, id: id)
    }
}
