#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// A real distribution image, three layers built by umoci itself from this machine's own
/// installed packages (HostRootfs: ELF binaries and libraries, usr-merge symlinks, hardlinks,
/// setuid programs): the mount must match `umoci unpack` byte for byte. Needs no network.
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct RealImageMountTests {
    @Test func hostPackagesThreeLayers() throws {
        try HostRootfs.requireInstalled()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let layout = temp.child("layout")
        try Umoci.initLayout(layout)
        try Umoci.newImage(layout: layout, tag: "empty")
        let bundle = temp.child("bundle")
        let rootfs = try Umoci.unpack(layout: layout, tag: "empty", into: bundle)
        func sh(_ script: String) throws {
            try Command.check("/bin/sh", ["-ec", script], environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "R": rootfs],
                              timeout: 600)
        }

        // Layer 1: the packages' files (owners, modes, times, hardlinks, setuid bits kept).
        try HostRootfs.copy(into: rootfs)
        try Umoci.repack(layout: layout, tag: "v1", bundle: bundle, extraArgs: ["--refresh-bundle"])

        // Layer 2: a deleted subtree (whiteouts) and an added file.
        try sh(#"rm -rf "$R/usr/share/doc"; echo layer2 > "$R/etc/strata-layer2""#)
        try Umoci.repack(layout: layout, tag: "v2", bundle: bundle, extraArgs: ["--refresh-bundle"])

        // Layer 3: what a package install does to a tree: replaced, appended, re-owned,
        // re-moded files, a symlink turned into a file, a dir emptied, new big file, xattrs.
        try sh(#"""
            rm -rf "$R/var/cache/apt/archives"; mkdir -p "$R/var/cache/apt/archives/partial"
            rm "$R/etc/os-release"; printf 'ID=strata\n' > "$R/etc/os-release"
            echo 'strata:x:1000:1000::/home/strata:/bin/sh' >> "$R/etc/passwd"
            mkdir -p "$R/home/strata"; chown 1000:1000 "$R/home/strata"; chmod 0750 "$R/var/log"
            head -c 10485760 /dev/urandom > "$R/opt-big"; ln "$R/opt-big" "$R/opt-big-link"
            printf 'strata\n' > "$R/etc/hostname"; touch -d '2020-02-02 02:02:02.123456789' "$R/etc/hostname"
            mkdir -p "$R/usr/local/bin"; ln -sf /usr/bin/true "$R/usr/local/bin/dangling-or-not"
            setfattr -n user.strata -v layer3 "$R/etc/passwd"
            setcap cap_net_raw+ep "$R/usr/bin/busybox"; chmod 4755 "$R/usr/bin/busybox"
            rm -rf "$R/usr/share/man"; ln -s /nonexistent "$R/usr/share/man"
            """#)
        try Umoci.repack(layout: layout, tag: "v3", bundle: bundle)
        try Umoci.removeBundle(bundle)

        let c = try MountComparison.run(layout: layout, tag: "v3")
        #expect(c.differences.isEmpty, Comment(rawValue: "differences (left = umoci, right = strata):\n"
            + c.differences.prefix(200).joined(separator: "\n")))
        #expect(c.mounted.count > 2000)
        #expect(c.mounted.entry("usr/bin/su")?.mode == 0o4755)
        #expect(c.mounted.entry("usr/bin/perl")?.nlink == 2)
        #expect(c.mounted.entry("bin")?.linkTarget == Array("usr/bin".utf8))
        #expect(c.mounted.entry("usr/share/doc") == nil)
        #expect(c.mounted.entry("etc/strata-layer2")?.size == 7)
        #expect(c.mounted.entry("opt-big")?.nlink == 2)
    }
}
