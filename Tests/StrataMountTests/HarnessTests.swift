#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataSystem
import StrataTestSupport

/// The helpers the mount tests stand on: if these lie, every mount test lies.
@Suite struct CommandTests {
    @Test func capturesOutputAndStatus() throws {
        let r = try Command.run("/bin/sh", ["-c", "printf 'out\\n'; printf 'err' >&2; exit 3"])
        #expect(r.status == 3)
        #expect(r.stdoutString == "out\n")
        #expect(r.stderr == "err")
        #expect(!r.timedOut && !r.succeeded)
    }

    @Test func largeOutputOnBothStreamsDoesNotDeadlock() throws {
        // Both over a pipe buffer (64 KiB): a sequential reader would hang here.
        let r = try Command.run("/bin/sh", ["-c", "head -c 300000 /dev/zero; head -c 300000 /dev/zero >&2"], timeout: 30)
        #expect(r.succeeded)
        #expect(r.stdout.count == 300000)
        #expect(r.stderr.utf8.count == 300000)
    }

    /// Killed, not waited for: a sleep that ran to its end would exit 0, not by SIGKILL.
    @Test func timeoutKillsTheChild() throws {
        let r = try Command.run("/bin/sleep", ["30"], timeout: 0.5)
        #expect(r.timedOut)
        #expect(r.status == 128 + SIGKILL)
    }

    @Test func doesNotWaitForADaemonHoldingThePipes() throws {
        // Like `strata mount`: the parent exits, a background child keeps stdout open. The
        // child lives until the test creates a gate file, which it does only after `run`
        // returned: a `run` that waited for the pipes to close would time out instead.
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let gate = temp.child("gate")
        defer { close(open(gate, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)) }
        // The child also ends when the directory goes (the gate may be removed with it before
        // the child sees it) or after 60 s: it never outlives the test.
        let r = try Command.run("/bin/sh", ["-c", "(n=0; while [ -d '\(temp.path)' ] && [ ! -e '\(gate)' ] && [ $n -lt 1200 ]; do n=$((n+1)); sleep 0.05; done) & echo started"],
                                timeout: 60)
        #expect(r.succeeded, "\(r)")
        #expect(!r.timedOut)
        #expect(r.stdoutString == "started\n")
    }

    @Test func environmentAndPathLookup() throws {
        let r = try Command.run("sh", ["-c", "echo $STRATA_X"], environment: ["STRATA_X": "42", "PATH": "/usr/bin:/bin"])
        #expect(r.stdoutString == "42\n")
        #expect(throws: CommandError.self) { try Command.check("/bin/false", []) }
    }
}

@Suite struct MountTableTests {
    @Test func rootAndProcAreMountedTempIsNot() throws {
        #expect(Mounts.isMounted("/"))
        #expect(Mounts.isMounted("/proc"))
        #expect(Mounts.isMounted("/proc/"))
        let temp = try TempDirectory()
        #expect(!Mounts.isMounted(temp.path))
        #expect(MountTable.mounts(under: temp.path).isEmpty)
    }

    @Test func tempDirectoryRemovesItself() throws {
        var path = ""
        do {
            let temp = try TempDirectory()
            path = temp.path
            // Under the run root scripts/test cleans when it set one, else in /tmp.
            let parent = getenv("STRATA_TEST_TMP").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            #expect(path.hasPrefix(parent + "/strata-test-") && !path.dropFirst(parent.count + 1).contains("/"), "\(path)")
            try FileIO.makeDirectories(temp.child("a/b"))
            try FileIO.writeAtomically(temp.child("a/b/f"), Array("x".utf8))
            #expect(FileIO.exists(temp.child("a/b/f")))
        }
        #expect(!path.isEmpty && !FileIO.exists(path))
    }

    @Test func strataBinaryIsLookedUpUnderThePackage() {
        #expect(FileIO.exists(StrataBinary.packageRoot + "/Package.swift"))
    }
}

@Suite(.enabled(if: getuid() == 0, "mounting needs root"), .mountTimeLimit)
struct UnmountTests {
    /// A bind mount stands in for a stuck strata mount: the fallbacks must take it down,
    /// and a temp dir must unmount what is left inside before deleting anything.
    @Test func forceUnmountAndTempDirCleanup() throws {
        var path = ""
        do {
            let temp = try TempDirectory()
            // ARC may end an object's life at its last use; the directory must outlive the mounts.
            defer { withExtendedLifetime(temp) {} }
            path = temp.path
            let source = try temp.makeDirectory("source")
            try FileIO.writeAtomically(source + "/keep", Array("keep".utf8))
            let target = try temp.makeDirectory("mnt with space")
            try Command.check("/bin/mount", ["--bind", source, target])
            #expect(Mounts.isMounted(target))
            #expect(MountTable.mounts(under: temp.path) == [target])

            try Mounts.forceUnmount(target)
            #expect(!Mounts.isMounted(target))

            try Command.check("/bin/mount", ["--bind", source, target])
            #expect(Mounts.isMounted(target))
        }
        #expect(!FileIO.exists(path))
        #expect(MountTable.mounts(under: path).isEmpty)
    }
}

@Suite(.enabled(if: Umoci.isAvailable && getuid() == 0, "needs umoci, as root"))
struct UmociTests {
    /// Builds an image with umoci itself and unpacks it: the reference path works here.
    @Test func buildAndUnpackAnImage() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let layout = temp.child("layout")
        try Umoci.initLayout(layout)
        try Umoci.newImage(layout: layout, tag: "base")
        let bundle = temp.child("bundle")
        let rootfs = try Umoci.unpack(layout: layout, tag: "base", into: bundle)
        try FileIO.makeDirectories(rootfs + "/etc")
        try FileIO.writeAtomically(rootfs + "/etc/motd", Array("hello\n".utf8))
        #expect(symlink("motd", rootfs + "/etc/motd-link") == 0)
        try Umoci.repack(layout: layout, tag: "v1", bundle: bundle)
        try Umoci.removeBundle(bundle)
        #expect(!FileIO.exists(bundle))

        let again = try Umoci.unpack(layout: layout, tag: "v1", into: temp.child("again"))
        let snap = try TreeSnapshot.capture(root: again)
        #expect(snap.entry("etc/motd")?.size == 6)
        #expect(snap.entry("etc/motd-link")?.linkTarget == Array("motd".utf8))
    }
}
