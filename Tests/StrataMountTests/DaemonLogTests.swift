import Foundation
import Glibc
import StrataSystem
import StrataTestSupport
import Testing

/// The mount daemon's log, its start-up errors and its name in `ps`.
@Suite("Daemon log, start-up errors, stale mounts, process title", .mountTimeLimit,
       .enabled(if: Requirement.isRoot, "needs root (mounts with --allow-other)"))
struct DaemonLogTests {
    /// A layer whose blob changed after indexing: the read fails with EIO and the log names
    /// the layer digest, the entry and the cause.
    @Test func eioIsLoggedWithLayerEntryAndCause() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let payload = Items.pseudoRandom(count: 300_000)
        let builder = try makeImage(temp, layers: [[Items.file(Array("dir/data".utf8), payload)]])
        let cache = temp.child("cache")
        #expect(try StrataBinary.run(["index", "--cache", cache, builder.reference("test")]).status == 0)
        let layer = try #require(builder.layers.first).descriptor.digest
        let blob = builder.layout + "/blobs/sha256/" + layer.hex
        let size = try FileIO.readAll(blob).count
        try FileIO.writeAtomically(blob, [UInt8](repeating: 0x55, count: size))

        for (level, infoShown) in [("info", true), ("error", false)] {
            let log = temp.child("log-\(level)")
            let mnt = try temp.makeDirectory("mnt-\(level)")
            let guardian = try MountGuard(image: builder.reference("test"), mountpoint: mnt,
                                          extraArgs: ["--cache", cache, "--log", log, "--log-level", level])
            defer { try? guardian.unmount() }
            #expect(readError(mnt + "/dir/data") == EIO)
            try guardian.unmount()
            let text = String(decoding: try FileIO.readAll(log), as: UTF8.self)
            let eio = text.split(separator: "\n").filter { $0.contains("EIO") }
            #expect(eio.count >= 1, "\(text)")
            let line = String(eio.first ?? "")
            #expect(line.contains("layer \(layer)"), "\(line)")
            #expect(line.contains("/dir/data"), "\(line)")
            #expect(line.contains(" error: "), "\(line)")   // the level
            // The cause: what the decoder said, after the entry.
            let cause = line.split(separator: ":").last.map(String.init) ?? ""
            #expect(!cause.trimmingCharacters(in: .whitespaces).isEmpty, "\(line)")
            #expect(text.contains("mounted \(builder.reference("test"))") == infoShown, "\(text)")
        }
    }

    /// With no --log, the background daemon logs to syslog. The test runs in a private mount
    /// namespace whose /dev is a tmpfs (with the real null, zero, urandom and fuse bound in)
    /// holding a /dev/log socket that a small listener writes to a file.
    @Test func backgroundDaemonLogsToSyslog() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file(Array("f".utf8), Items.pseudoRandom(count: 200_000))]])
        let cache = temp.child("cache")
        #expect(try StrataBinary.run(["index", "--cache", cache, builder.reference("test")]).status == 0)
        let layer = try #require(builder.layers.first).descriptor.digest
        let blob = builder.layout + "/blobs/sha256/" + layer.hex
        try FileIO.writeAtomically(blob, [UInt8](repeating: 0x55, count: try FileIO.readAll(blob).count))
        let mnt = try temp.makeDirectory("mnt")
        let old = try temp.makeDirectory("olddev")
        let out = temp.child("syslog")
        let strata = try StrataBinary.path()
        let listener = "import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\n" +
            "f=open(sys.argv[2],'ab',0)\nwhile True: f.write(s.recv(65536)+b'\\n')"
        let script = """
            set -eu
            mount --bind /dev '\(old)'
            mount -t tmpfs tmpfs /dev
            for n in null zero urandom random fuse; do touch /dev/$n; mount --bind '\(old)'/$n /dev/$n; done
            python3 -c "\(listener)" /dev/log '\(out)' & listener=$!
            trap 'umount '\''\(mnt)'\'' 2>/dev/null || umount -l '\''\(mnt)'\'' 2>/dev/null || true; kill $listener 2>/dev/null || true' EXIT
            n=0; while [ ! -S /dev/log ]; do n=$((n+1)); [ $n -le 200 ] || exit 91; sleep 0.05; done
            '\(strata)' mount --cache '\(cache)' '\(builder.reference("test"))' '\(mnt)'
            if cat '\(mnt)/f' >/dev/null 2>&1; then echo read-ok; fi
            '\(strata)' unmount '\(mnt)'
            n=0; while ! grep -q unmounted '\(out)' 2>/dev/null; do n=$((n+1)); [ $n -le 200 ] || exit 92; sleep 0.05; done
            """
        let r = try Command.run("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script], timeout: 300)
        #expect(r.status == 0, "\(r.stdoutString) \(r.stderr)")
        #expect(!r.stdoutString.contains("read-ok"))
        let text = String(decoding: (try? FileIO.readAll(out)) ?? [], as: UTF8.self)
        #expect(text.contains("strata["), "\(text)")    // the ident, with the pid
        #expect(text.contains("mounted \(builder.reference("test"))"), "\(text)")
        #expect(text.contains("EIO: layer \(layer): /f: read of"), "\(text)")
        #expect(!Mounts.isMounted(mnt))
    }

    /// In the foreground the log goes to stderr.
    @Test func foregroundDaemonLogsToStderr() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "x")]])
        let mnt = try temp.makeDirectory("mnt")
        let strata = try StrataBinary.path()
        let script = """
            '\(strata)' mount --foreground --cache '\(temp.child("cache"))' '\(builder.reference("test"))' '\(mnt)' 2>'\(temp.child("err"))' & pid=$!
            n=0; while ! findmnt '\(mnt)' >/dev/null; do n=$((n+1)); [ $n -le 600 ] || { kill $pid; exit 91; }; sleep 0.05; done
            '\(strata)' unmount '\(mnt)'
            wait $pid
            """
        let r = try Command.run("/bin/sh", ["-c", script], timeout: 300)
        defer { if Mounts.isMounted(mnt) { _ = try? StrataBinary.run(["unmount", mnt]) } }
        #expect(r.status == 0, "\(r.stderr)")
        let err = String(decoding: try FileIO.readAll(temp.child("err")), as: UTF8.self)
        #expect(err.contains(" info: mounted \(builder.reference("test"))"), "\(err)")
        #expect(err.contains(" info: unmounted \(mnt)"), "\(err)")
    }

    /// When the kernel refuses the mount, `strata mount` prints what libfuse or fusermount3
    /// said, not a guess: here the daemon runs without CAP_SYS_ADMIN (and cannot get it back
    /// through the setuid fusermount3), so the mount fails with EPERM.
    @Test func startupFailurePrintsTheRealCause() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "x")]])
        let mnt = try temp.makeDirectory("mnt")
        let r = try Command.run("/usr/bin/setpriv", ["--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin",
                                                     try StrataBinary.path(), "mount", "--cache", temp.child("cache"),
                                                     builder.reference("test"), mnt])
        defer { if Mounts.isMounted(mnt) { _ = try? StrataBinary.run(["unmount", mnt]) } }
        #expect(r.status == 1, "\(r.stderr)")
        #expect(!Mounts.isMounted(mnt))
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        #expect(!r.stderr.contains("is /dev/fuse available"), "\(r.stderr)")
        #expect(r.stderr.contains("not permitted"), "\(r.stderr)")
    }

    @Test func mountOverAStaleMountSaysSo() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "x")]])
        let mnt = try temp.makeDirectory("mnt")
        let guardian = try MountGuard(image: builder.reference("test"), mountpoint: mnt, extraArgs: ["--cache", temp.child("cache")])
        defer { try? guardian.unmount() }
        let pid = try #require(daemonPID(mnt))
        kill(-pid, SIGKILL)   // the supervisor's group: it and its server
        #expect(Mounts.waitUntil(seconds: 10) { kill(pid, 0) != 0 })
        let r = try StrataBinary.run(["mount", "--cache", temp.child("cache"), builder.reference("test"), mnt])
        #expect(r.status == 1)
        #expect(r.stderr.contains("stale"), "\(r.stderr)")
        #expect(r.stderr.contains("strata unmount \(mnt)"), "\(r.stderr)")
        #expect(!r.stderr.contains("already mounted"), "\(r.stderr)")
        #expect(try StrataBinary.run(["unmount", mnt]).status == 0)
        #expect(!Mounts.isMounted(mnt))
    }

    /// `ps` shows `strata mount ... IMAGE MOUNTPOINT` and the kernel's name is strata, not exe.
    @Test func daemonProcessTitle() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "x")]])
        let mnt = try temp.makeDirectory("mnt")
        let guardian = try MountGuard(image: builder.reference("test"), mountpoint: mnt, extraArgs: ["--cache", temp.child("cache")])
        defer { try? guardian.unmount() }
        let pid = try #require(daemonPID(mnt))
        let cmdline = try FileIO.readAll("/proc/\(pid)/cmdline").split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(cmdline.first == "strata")
        #expect(cmdline.dropFirst().first == "mount")
        #expect(cmdline.contains(builder.reference("test")) && cmdline.contains(mnt), "\(cmdline)")
        let comm = String(decoding: try FileIO.readAll("/proc/\(pid)/comm"), as: UTF8.self)
        #expect(comm == "strata\n")
        try guardian.unmount()
    }

    private func daemonPID(_ mountpoint: String) -> pid_t? {
        let r = try? Command.run("/usr/bin/pgrep", ["-f", "strata mount --foreground.* \(mountpoint)( |$)"])
        return r.flatMap { Int32($0.stdoutString.split(separator: "\n").first ?? "") }
    }
}
