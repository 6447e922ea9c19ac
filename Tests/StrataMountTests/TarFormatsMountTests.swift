#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTar
import StrataTestSupport

/// Every tar format a layer may come in (issue 2, point 2), mounted and compared with umoci.
/// Layers come both from TarWriter (exact control of each field) and from GNU tar (what
/// real images are made of).
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct TarFormatsMountTests {
    static let long = (0..<3).map { String(repeating: "\($0)", count: 90) }.joined(separator: "/")

    /// Entries every format can carry (ustar: paths split into prefix and name).
    static var common: [TarItem] {
        [Items.dir("dir", mode: 0o750, uid: 10, gid: 20), Items.file("dir/file", "hello", mode: 0o640, uid: 10),
         Items.symlink("dir/link", to: "file"), Items.hardlink("dir/hard", to: "dir/file"),
         Items.charDevice("null", major: 1, minor: 3), Items.fifo("fifo"), Items.file("empty", ""),
         Items.file(String(repeating: "p", count: 120) + "/" + String(repeating: "n", count: 99), "prefix+name")]
    }

    @Test func ustar() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [Self.common], format: .ustar)
        try expectSameAsUmoci(b)
    }

    @Test func gnuLongNamesAndBase256() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [Self.common + [
            Items.file(Self.long + "/file", "long name (L)"),
            Items.symlink("longlink", to: "/" + Self.long + "/file"),           // K record
            Items.hardlink("longhard", to: Self.long + "/file"),               // K record for a hardlink
            Items.file("bigid", "base-256 ids", uid: 3_000_000, gid: 2_097_152),
            Items.file("future", "base-256 mtime", mtime: 10_000_000_000),
            Items.file("past", "negative base-256 mtime", mtime: -1_000_000),
            Items.blockDevice("bigdev", major: 3_000_000, minor: 5),
        ]], format: .gnu)
        // umoci 0.4.7 sets 10_000_000_000 (year 2286) as -2^31 on a filesystem that stores it
        // (touch -d @10000000000 does): its own limit, so that one mtime is checked here only.
        let c = try expectSameAsUmoci(b, ignoringAt: ["future": [.mtime]])
        #expect(c.mounted.entry("future")?.mtimeSeconds == 10_000_000_000)
        #expect(c.mounted.entry(Self.long + "/file")?.nlink == 2)
        #expect(c.mounted.entry("bigid")?.uid == 3_000_000)
    }

    @Test func paxExtendedRecords() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        var owned = Items.file("named", "uname/gname in records")
        owned.0.uname = String(repeating: "u", count: 40)
        owned.0.gname = "grüppe"
        let b = try makeImage(temp, layers: [Self.common + [
            Items.file(Self.long + "/file", "long path record"), Items.symlink("longlink", to: Self.long),
            Items.file("bigid", "uid record", uid: 3_000_000, gid: 5_000_000),
            Items.file("frac", "fractional mtime", mtime: 1_234_567_890, nanoseconds: 500_000_001),
            Items.file("ütf-8 ☃", "utf-8 path record"), owned,
            Items.file("xattrs", "x", xattrs: ["user.a": bytes("1"),
                                                 "trusted.t": bytes("3"), "security.capability": [1, 0, 0, 2] + [UInt8](repeating: 0, count: 16)]),
        ]], format: .pax)
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("frac")?.mtimeNanoseconds == 500_000_001)
    }

    /// A 'g' header applies to every later entry; this one carries only a comment, which
    /// must change nothing. umoci 0.4.7 refuses 'g' typeflags, so the reference is the same
    /// layer without it.
    @Test func paxGlobalHeader() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let entries = try TarWriter.archive(Self.common, format: .pax)
        let global = RawTar.pax([("comment", bytes("a global comment"))], global: true, name: "pax_global_header")
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(tar: global + entries)
        try builder.write(tag: "test")
        builder.layers = []
        try builder.addLayer(tar: entries)
        try builder.write(tag: "reference")
        try expectSameAsUmoci(builder, referenceTag: "reference")
    }

    /// Layers GNU tar writes from a real tree, in each of its formats.
    @Test(arguments: ["gnu", "ustar", "posix", "oldgnu"])
    func gnuTarLayer(format: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tree = try temp.makeDirectory("tree")
        try FileIO.makeDirectories(tree + "/etc/ssl")
        try FileIO.writeAtomically(tree + "/etc/ssl/cert", Items.pseudoRandom(count: 100_000))
        try FileIO.writeAtomically(tree + "/etc/passwd", bytes("root:x:0:0::/root:/bin/sh\n"), mode: 0o600)
        #expect(link(tree + "/etc/passwd", tree + "/etc/passwd-") == 0)
        #expect(symlink("ssl/cert", tree + "/etc/cert") == 0)
        #expect(mkfifo(tree + "/etc/fifo", 0o600) == 0)
        if format != "ustar" {
            let deep = tree + "/" + Self.long
            try FileIO.makeDirectories(deep)
            try FileIO.writeAtomically(deep + "/" + String(repeating: "f", count: 200), bytes("deep"))
        }
        var args = ["--format=\(format)", "--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner"]
        if format == "posix" {
            try setExtendedAttribute(path: tree + "/etc/passwd", name: "user.checked", value: bytes("yes"))
            args += ["--xattrs", "--xattrs-include=*"]
        }
        let tar = try Command.check(Mounts.tool("tar"), args + ["-C", tree, "-cf", "-", "."]).stdout
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(tar: tar)
        try builder.write(tag: "test")
        let c = try expectSameAsUmoci(builder)
        if format == "posix" { #expect(c.mounted.entry("etc/passwd")?.xattrs.count == 1) }
    }

    /// libarchive's writer (bsdtar), whose PAX headers carry LIBARCHIVE.xattr next to SCHILY.xattr.
    @Test(arguments: ["pax", "ustar", "gnutar"])
    func bsdtarLayer(format: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tree = try temp.makeDirectory("tree")
        try FileIO.makeDirectories(tree + "/usr/lib")
        try FileIO.writeAtomically(tree + "/usr/lib/lib.so", Items.pseudoRandom(count: 70_000, seed: 2), mode: 0o755)
        #expect(link(tree + "/usr/lib/lib.so", tree + "/usr/lib/lib.so.1") == 0)
        #expect(symlink("lib.so.1", tree + "/usr/lib/lib.so.1.0") == 0)
        if format == "pax" {
            try setExtendedAttribute(path: tree + "/usr/lib/lib.so", name: "user.origin", value: bytes("bsdtar"))
        }
        let tar = try Command.check(Mounts.tool("bsdtar"), ["--format", format, "--uid", "0", "--gid", "0",
                                                            "-C", tree, "-cf", "-", "."]).stdout
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(tar: tar)
        try builder.write(tag: "test")
        let c = try expectSameAsUmoci(builder)
        if format == "pax" { #expect(c.mounted.entry("usr/lib/lib.so")?.xattrs.count == 1) }
    }

    /// Sparse files GNU tar writes: data at the start, in the middle, at the end, none at all,
    /// and a hole at the end. Their contents must read back exactly.
    @Test(arguments: ["gnu", "posix-0.0", "posix-0.1", "posix-1.0"])
    func sparseFiles(variant: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tree = try temp.makeDirectory("tree")
        func sparse(_ name: String, size: Int, data: [(Int, String)]) throws {
            let fd = open(tree + "/" + name, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
            #expect(fd >= 0)
            defer { close(fd) }
            for (offset, text) in data {
                #expect(pwrite(fd, text, text.utf8.count, off_t(offset)) == text.utf8.count)
            }
            #expect(ftruncate(fd, off_t(size)) == 0)
        }
        let mib = 1 << 20
        try sparse("edges", size: 20 * mib, data: [(0, "start"), (5 * mib + 17, "middle"), (20 * mib - 3, "end")])
        try sparse("hole-at-end", size: 9 * mib, data: [(4096, "data")])
        try sparse("all-hole", size: 3 * mib, data: [])
        try sparse("many", size: 4 * mib, data: (0..<100).map { ($0 * 40_000 + $0, "chunk \($0)") })
        let common = ["--mtime=@1700000000", "--owner=0", "--group=0", "--numeric-owner", "-C", tree]
        let sparseArgs: [String] = variant == "gnu"
            ? ["--format=gnu", "--sparse"]
            : ["--format=posix", "--sparse", "--sparse-version=\(variant.dropFirst("posix-".count))"]
        let tar = try Command.check(Mounts.tool("tar"), sparseArgs + common + ["-cf", "-", "."]).stdout
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(tar: tar)
        try builder.write(tag: "test")
        var referenceTag: String? = nil
        if variant == "gnu" {
            // umoci 0.4.7 rejects GNU sparse ('S') entries: the reference is a plain twin.
            let plain = try Command.check(Mounts.tool("tar"), ["--format=gnu"] + common + ["-cf", "-", "."]).stdout
            builder.layers = []
            try builder.addLayer(tar: plain)
            try builder.write(tag: "reference")
            referenceTag = "reference"
        }
        let c = try expectSameAsUmoci(builder, referenceTag: referenceTag)
        for name in ["edges", "hole-at-end", "all-hole", "many"] {
            let expected = sha(try FileIO.readAll(tree + "/" + name))
            #expect(c.mounted.entry(name)?.contentSHA256 == expected, "\(name)")
        }
    }
}
