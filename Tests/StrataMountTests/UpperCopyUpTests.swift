#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// Copy-up cases, the upper directory's format, remount, kernel overlayfs, kill -9.
@Suite(.serialized, .mountTimeLimit) struct UpperCopyUpTests {
    @Test func copyUpKeepsMetadataAndHardlinks() throws {
        let f = try UpperFixture()
        try f.mount()
        // Opening read-only copies nothing up.
        #expect((try? FileIO.readAll(f.path("big")))?.count == 3_000_000)
        #expect(statOf(f.upper + "/big") == nil)
        try f.run("""
        printf '!' >> etc/hosts
        chown -h 5:6 etc/link
        chmod 0700 d/e
        printf U >> home/u/file
        printf B | dd of=big bs=1 seek=1000 conv=notrunc status=none
        """)
        // a hardlink: one copy, every name sees the write
        #expect(readText(f.path("etc/hosts2")) == "hello!")
        let a = statOf(f.upper + "/etc/hosts"), b = statOf(f.upper + "/etc/hosts2")
        #expect(a != nil && a?.st_ino == b?.st_ino && a?.st_nlink == 2)
        #expect(try f.sh("getfattr --only-values -n user.k '\(f.upper)/etc/hosts'") == "v")
        // a symlink, a directory (with its parents), owner and mode kept
        #expect(statOf(f.upper + "/etc/link")?.st_uid == 5)
        #expect(statOf(f.upper + "/d/e").map { $0.st_mode & 0o7777 } == 0o700)
        #expect(statOf(f.upper + "/d/e/f") == nil)
        let u = statOf(f.upper + "/home/u/file")
        #expect(u?.st_uid == 1000 && u.map { $0.st_mode & 0o7777 } == 0o640)
        #expect(statOf(f.upper + "/home/u")?.st_uid == 1000)
        #expect(statOf(f.path("big"))?.st_size == 3_000_000)
        // nothing half-made is left in the work directory
        #expect(try f.sh("ls -A '\(f.upper).work/tmp'") == "")
        try f.unmount()
        try f.mount()
        #expect(readText(f.path("etc/hosts")) == "hello!" && readText(f.path("etc/hosts2")) == "hello!")
        try f.unmount()
    }

    @Test func whiteoutsOpaqueDirectoriesAndRedirects() throws {
        let f = try UpperFixture()
        try f.mount()
        try f.run("""
        rm etc/hosts2; printf again > etc/hosts2
        rm second
        rm -rf d; mkdir d
        mv etc etc2
        """)
        #expect(readText(f.path("etc/hosts2")) == nil)
        #expect(readText(f.path("etc2/hosts2")) == "again")
        #expect(try f.run("ls -A d") == "")
        #expect(statOf(f.path("d/e")) == nil)   // lookup agrees with readdir
        #expect(try f.run("ls etc2") == "hosts\nhosts2\nlink\nsub\n")
        #expect(statOf(f.upper + "/second").map { $0.st_mode & S_IFMT == S_IFCHR && $0.st_rdev == 0 } == true)
        #expect(try f.sh("getfattr --only-values -n trusted.overlay.opaque '\(f.upper)/d'") == "y")
        #expect(try f.sh("getfattr --only-values -n trusted.overlay.redirect '\(f.upper)/etc2'") == "/etc")
        // overlay metadata is not shown to callers
        #expect(try f.run("getfattr -d -m - d") == "")
        try f.unmount()
        try f.mount()
        #expect(try f.run("ls etc2; ls -A d; ls") == "hosts\nhosts2\nlink\nsub\nbig\nd\netc2\nhome\nkeep\nsg\n")
        try f.unmount()
    }

    /// The same upper directory read by kernel overlayfs over the extracted layers shows the
    /// same tree as strata does.
    @Test func kernelOverlayfsSeesTheSameView() throws {
        let f = try UpperFixture()
        try f.mount()
        try f.run("""
        printf '!' >> etc/hosts; rm -rf d; mkdir d; printf n > d/n
        mv etc etc2; rm second; mkdir -p new/deep; printf x > new/deep/x
        ln -s /nowhere new/sl; chmod 0750 sg; setfattr -n user.t -v 1 big
        """)
        try f.unmount()
        let diff = try f.differencesFromKernelOverlay()
        #expect(diff.isEmpty, "\(diff.prefix(20).joined(separator: "\n"))")
    }

    /// fsync'd data survives kill -9 of the daemon; `strata unmount` clears the dead mount.
    @Test func fsyncedDataSurvivesKill() throws {
        let f = try UpperFixture()
        try f.mount()
        let p = f.path("durable")
        let fd = open(p, O_CREAT | O_WRONLY, 0o644)
        #expect(fd >= 0)
        #expect(write(fd, "kept", 4) == 4)
        #expect(fsync(fd) == 0)
        close(fd)
        let pid = try daemonPID(mountpoint: f.mountpoint)
        #expect(kill(-pid, SIGKILL) == 0)   // the supervisor's group: it and its server
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)   // not our child: returns at once; the kill is enough
        try StrataBinary.run(["unmount", f.mountpoint]).checkSucceeded()
        f.guardian = nil
        try f.mount()
        #expect(readText(p) == "kept")
        try f.unmount()
    }

    /// The daemon serving `mountpoint`: the strata process whose arguments name it.
    func daemonPID(mountpoint: String) throws -> pid_t {
        let out = try Command.run("/usr/bin/pgrep", ["-f", "--", "mount --foreground .* \(mountpoint) --ready-fd"])
        guard let pid = out.stdoutString.split(separator: "\n").compactMap({ pid_t($0) }).first else {
            throw HarnessError("no daemon for \(mountpoint)")
        }
        return pid
    }
}

extension CommandResult {
    func checkSucceeded() throws {
        if !succeeded { throw HarnessError("command failed: \(stderr)") }
    }
}
