import Glibc
import StrataSystem
import StrataTestSupport
import Testing

/// `mount -t fuse.strata` and /etc/fstab lines, through mount(8) and mount.fuse3. mount(8)
/// runs its helper without PATH, so mount.fuse3's `sh -c strata ...` searches the shell's
/// default PATH: each test runs in a private mount namespace where a directory holding
/// `strata` (a link to the binary under test) is bind-mounted on /usr/local/sbin, the first
/// directory of that PATH. The host's /usr/local/sbin is never touched.
@Suite("mount -t fuse.strata and fstab through mount(8)", .mountTimeLimit,
       .enabled(if: Requirement.isRoot, "needs root (mount namespaces, mount(8))"))
struct MountHelperTests {
    /// Runs `body` (shell) in a new mount namespace with strata on the default PATH. The
    /// trap unmounts MNT even when a step fails, so no daemon outlives the namespace.
    func inNamespace(_ temp: TempDirectory, mountpoint: String, _ body: String) throws -> CommandResult {
        let bin = try temp.makeDirectory("bin")
        let binary = try StrataBinary.path()
        let linked = Glibc.symlink(binary, bin + "/strata")
        try #require(linked == 0, "symlink \(bin)/strata -> \(binary): errno \(errno)")
        let script = """
            set -eu
            mount --bind '\(bin)' /usr/local/sbin
            trap 'umount '\\''\(mountpoint)'\\'' 2>/dev/null || umount -l '\\''\(mountpoint)'\\'' 2>/dev/null || true' EXIT
            daemon() { pgrep -f "^strata mount --foreground.* \(mountpoint)( |$)" || true; }
            gone() { n=0; while [ -n "$(daemon)" ]; do n=$((n+1)); [ $n -le 200 ] || return 1; sleep 0.05; done; }
            \(body)
            """
        return try Command.run("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script], timeout: 300)
    }

    @Test func mountTypeFuseStrataAndUmount() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("etc/hello", "from the image\n")]])
        let mnt = try temp.makeDirectory("mnt")
        let r = try inNamespace(temp, mountpoint: mnt, """
            mount -t fuse.strata -o ro,allow_other,cache='\(temp.child("cache"))',noauto,nodev,x-systemd.automount '\(builder.reference("test"))' '\(mnt)'
            findmnt -n -o FSTYPE,OPTIONS '\(mnt)'
            cat '\(mnt)/etc/hello'
            [ -n "$(daemon)" ] && echo daemon-running
            umount '\(mnt)'
            gone && echo daemon-gone
            findmnt '\(mnt)' >/dev/null || echo unmounted
            """)
        #expect(r.status == 0, "\(r.stdoutString) \(r.stderr)")
        let out = r.stdoutString
        #expect(out.contains("fuse.strata"), "\(out)")
        #expect(out.contains("allow_other"), "\(out)")
        #expect(out.contains("from the image"))
        #expect(out.contains("daemon-running"))
        #expect(out.contains("daemon-gone"))
        #expect(out.contains("unmounted"))
        #expect(!Mounts.isMounted(mnt))
    }

    @Test func fstabLine() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "fstab\n")]])
        let mnt = try temp.makeDirectory("mnt")
        let fstab = temp.child("fstab")
        let line = "\(builder.reference("test")) \(mnt) fuse.strata ro,allow_other,cache=\(temp.child("cache")),nofail,_netdev,defaults 0 0\n"
        try FileIO.writeAtomically(fstab, Array(("# a test's fstab\n" + line).utf8))
        let r = try inNamespace(temp, mountpoint: mnt, """
            mount --fstab '\(fstab)' '\(mnt)'
            findmnt -n -o FSTYPE '\(mnt)'
            cat '\(mnt)/a'
            umount '\(mnt)'
            gone && echo daemon-gone
            """)
        #expect(r.status == 0, "\(r.stdoutString) \(r.stderr)")
        #expect(r.stdoutString.contains("fuse.strata\nfstab\ndaemon-gone"), "\(r.stdoutString)")
    }

    /// rw needs upper=; the writes land there; wrong options are refused with the reason.
    @Test func writableThroughMountOptionsAndBadOptions() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "lower\n")]])
        let mnt = try temp.makeDirectory("mnt")
        let upper = temp.child("upper")
        let image = builder.reference("test")
        let cache = temp.child("cache")
        let err = temp.child("err")
        let r = try inNamespace(temp, mountpoint: mnt, """
            if mount -t fuse.strata -o rw,cache='\(cache)' '\(image)' '\(mnt)' 2>'\(err)'; then echo rw-mounted; fi; cat '\(err)'
            if mount -t fuse.strata -o ro,frobnicate,cache='\(cache)' '\(image)' '\(mnt)' 2>'\(err)'; then echo bad-mounted; fi; cat '\(err)'
            mount -t fuse.strata -o rw,upper='\(upper)',cache='\(cache)' '\(image)' '\(mnt)'
            echo written > '\(mnt)/new'
            umount '\(mnt)'
            gone && echo daemon-gone
            """)
        #expect(r.status == 0, "\(r.stdoutString) \(r.stderr)")
        let out = r.stdoutString
        #expect(!out.contains("rw-mounted") && out.contains("rw needs upper=DIR"), "\(out)")
        #expect(!out.contains("bad-mounted") && out.contains("unknown mount option frobnicate"), "\(out)")
        #expect(out.contains("daemon-gone"))
        #expect(try FileIO.readAll(upper + "/new") == Array("written\n".utf8))
    }

    /// The helper form without mount(8): `strata IMAGE MNT -o OPTIONS`, as mount.fuse3 runs it.
    @Test func helperFormDirectly() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "direct\n")]])
        let mnt = try temp.makeDirectory("mnt")
        let r = try StrataBinary.run([builder.reference("test"), mnt, "-o", "ro,dev,suid,cache=\(temp.child("cache"))"])
        #expect(r.status == 0, "\(r.stderr)")
        defer { _ = try? StrataBinary.run(["unmount", mnt]) }
        #expect(try FileIO.readAll(mnt + "/a") == Array("direct\n".utf8))
        #expect(try StrataBinary.run(["unmount", mnt]).status == 0)
        let bad = try StrataBinary.run([builder.reference("test"), mnt, "-o", "upper"])
        #expect(bad.status == 2 && bad.stderr.contains("upper= needs a value"), "\(bad.stderr)")
    }
}
