#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataTar
import StrataTestSupport

/// The union rules (issue 2, point 4), each on a small image built in code: the mount must
/// match `umoci unpack`, and the rule's own outcome is also checked on the mount directly,
/// so a test says which rule broke rather than only "the trees differ".
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct UnionRulesMountTests {
    @Test func laterLayersWin() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.dir("etc"), Items.file("etc/conf", "lower", mode: 0o600, uid: 5, gid: 6), Items.file("keep", "k"),
             Items.symlink("link", to: "keep")],
            [Items.file("etc/conf", "upper!", mode: 0o640, uid: 7, gid: 8), Items.symlink("keep", to: "etc/conf")],
            [Items.file("link", "now a file")],
        ])
        let c = try expectSameAsUmoci(b)
        let conf = c.mounted.entry("etc/conf")
        #expect(conf?.contentSHA256 == sha(bytes("upper!")))
        #expect(conf?.mode == 0o640 && conf?.uid == 7 && conf?.gid == 8)
        #expect(c.mounted.entry("keep")?.linkTarget == bytes("etc/conf"))
        #expect(c.mounted.entry("link")?.type == .regular)
    }

    @Test func whiteoutHidesNameAndSubtree() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.dir("x"), Items.dir("x/y"), Items.file("x/y/z", "z"), Items.file("f", "f"), Items.file("g", "g"),
             Items.dir("d"), Items.file("d/gone", "1"), Items.file("d/stays", "2")],
            [Items.whiteout("x"), Items.whiteout("f"), Items.whiteout("d/gone"), Items.whiteout("never-existed")],
            // A whiteout hides lower layers only: re-adding the name above it works.
            [Items.file("f", "back")],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.paths == ["d", "d/stays", "f", "g"].sortedWithRoot)
        #expect(c.mounted.entry("f")?.contentSHA256 == sha(bytes("back")))
    }

    /// The opaque marker hides lower children of its directory but never entries of its own
    /// layer, whether the tar lists it before or after them.
    @Test(arguments: [false, true])
    func opaqueDirectory(markerFirst: Bool) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let own = [Items.file("o/new", "n"), Items.dir("o/sub", mode: 0o750), Items.file("o/sub/deep", "d")]
        let upper = markerFirst ? [Items.opaque("o")] + own : own + [Items.opaque("o")]
        let b = try makeImage(temp, layers: [
            [Items.dir("o"), Items.file("o/lower", "l"), Items.dir("o/sub"), Items.file("o/sub/lower", "l"),
             Items.file("outside", "x")],
            upper,
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.paths == ["o", "o/new", "o/sub", "o/sub/deep", "outside"].sortedWithRoot)
    }

    @Test func whiteoutEntriesNeverShow() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        // Also in the lowest layer, where there is nothing to hide.
        let b = try makeImage(temp, layers: [
            [Items.whiteout("nothing"), Items.opaque(""), Items.dir("a"), Items.opaque("a"), Items.file("a/f", "f")],
            [Items.whiteout("a/nothing"), Items.opaque("a"), Items.file("a/g", "g")],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(!c.mounted.paths.contains { $0.contains(".wh.") })
        #expect(c.mounted.paths == ["a", "a/g"].sortedWithRoot)
    }

    @Test func nonDirectoryAboveDirectoryHidesTheSubtree() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.dir("d"), Items.dir("d/sub"), Items.file("d/sub/f", "f"), Items.dir("e"), Items.file("e/f", "f"),
             Items.dir("p"), Items.file("p/f", "f")],
            [Items.file("d", "file now"), Items.symlink("e", to: "d"), Items.fifo("p")],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.paths == ["d", "e", "p"].sortedWithRoot)
        #expect(c.mounted.entry("d")?.type == .regular)
    }

    @Test func directoryAboveNonDirectoryReplacesIt() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.file("d", "file"), Items.symlink("s", to: "elsewhere"), Items.fifo("p")],
            // (A file below a lower non-directory with no directory entry of its own, e.g.
            // "f/child" over a file "f", is left out: umoci 0.4.7 fails on it, "not a directory".)
            [Items.dir("d", mode: 0o711), Items.file("d/child", "c"), Items.dir("s"), Items.dir("p/"), Items.file("p/x", "x")],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("d")?.type == .directory && c.mounted.entry("d")?.mode == 0o711)
        #expect(c.mounted.entry("s")?.type == .directory)
        #expect(c.mounted.paths == ["d", "d/child", "p", "p/x", "s"].sortedWithRoot)
    }

    @Test func directoriesMergeWithTheUppersMetadata() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.dir("d", mode: 0o700, uid: 1, gid: 1, mtime: 1_000, xattrs: ["user.layer": bytes("lower")]),
             Items.file("d/a", "a")],
            [Items.dir("d", mode: 0o751, uid: 2, gid: 3, mtime: 2_000, xattrs: ["user.layer": bytes("upper")]),
             Items.file("d/b", "b")],
        ])
        let c = try expectSameAsUmoci(b)
        let d = c.mounted.entry("d")
        #expect(d?.mode == 0o751 && d?.uid == 2 && d?.gid == 3 && d?.mtimeSeconds == 2_000)
        #expect(d?.xattrs.map(\.value) == [bytes("upper")])
        #expect(c.mounted.paths == ["d", "d/a", "d/b"].sortedWithRoot)
    }

    @Test func duplicatePathInOneLayerLastEntryWins() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [[
            Items.file("a", "first"), Items.file("a", "second", mode: 0o600),
            Items.file("b", "file"), Items.symlink("b", to: "a"),
            Items.dir("c", mode: 0o700), Items.dir("c", mode: 0o755), Items.file("c/x", "x"),
        ]])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("a")?.contentSHA256 == sha(bytes("second")))
        #expect(c.mounted.entry("b")?.type == .symlink)
        #expect(c.mounted.entry("c")?.mode == 0o755)
    }

    @Test func hardlinksShareOneInode() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.file("base", "shared", mode: 0o640, uid: 3), Items.hardlink("same", to: "base"),
             Items.dir("dir"), Items.hardlink("dir/deep", to: "base")],
            // A link to a file of a lower layer, and a group of this layer's own.
            [Items.hardlink("from-upper", to: "base"), Items.file("other", "o"), Items.hardlink("other2", to: "./other")],
        ])
        let c = try expectSameAsUmoci(b)
        let group: Set<[UInt8]> = Set(["base", "same", "dir/deep", "from-upper"].map(bytes))
        #expect(c.mounted.hardlinkGroups.contains(group))
        #expect(c.mounted.entry("from-upper")?.nlink == 4)
        #expect(c.mounted.entry("from-upper")?.uid == 3)
        #expect(c.mounted.entry("other2")?.nlink == 2)
    }

    /// Replacing or whiting out one name of a hardlink group leaves the others as they were.
    @Test func hardlinkGroupSplitByUpperLayer() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.file("a", "old"), Items.hardlink("b", to: "a"), Items.hardlink("c", to: "a"),
             Items.file("x", "x"), Items.hardlink("y", to: "x")],
            [Items.file("a", "new"), Items.whiteout("x")],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("a")?.contentSHA256 == sha(bytes("new")))
        #expect(c.mounted.entry("a")?.nlink == 1)
        #expect(c.mounted.entry("b")?.contentSHA256 == sha(bytes("old")))
        #expect(c.mounted.entry("b")?.nlink == 2)
        #expect(c.mounted.entry("y")?.nlink == 1)
    }

    @Test func impliedDirectoriesAre0755RootOwned() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.file("a/b/c/file", "f", uid: 1000, gid: 1000)],
            [Items.symlink("x/y/link", to: "/a")],
        ])
        let c = try expectSameAsUmoci(b)
        for path in ["a", "a/b", "a/b/c", "x", "x/y"] {
            let e = c.mounted.entry(path)
            #expect(e?.type == .directory && e?.mode == 0o755 && e?.uid == 0 && e?.gid == 0, "\(path)")
        }
    }

    /// Inside a set-group-ID directory, an implied directory is made as mkdir makes it there:
    /// that directory's group and 2755 (umoci's tree shows the kernel's rule).
    @Test func impliedDirectoriesInsideSetgidDirectory() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.dir("srv", mode: 0o2775, gid: 50), Items.file("srv/a/b/file", "f", uid: 7, gid: 8)],
            [Items.file("srv/c/file", "g")],
        ])
        let c = try expectSameAsUmoci(b)
        for path in ["srv/a", "srv/a/b", "srv/c"] {
            let e = c.mounted.entry(path)
            #expect(e?.type == .directory && e?.mode == 0o2755 && e?.uid == 0 && e?.gid == 50, "\(path)")
        }
        #expect(c.mounted.entry("srv/a/b/file")?.gid == 8)
    }

    @Test func pathsAreNormalised() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [
            [Items.dir("./"), Items.dir("./a/"), Items.file("./a/f", "f"), Items.dir("b/"), Items.file("b//g", "g"),
             Items.file("./c/./d", "d"), Items.file("/abs", "abs")],
            // The same names spelled differently in the upper layer still replace them.
            [Items.file("a//f", "f2"), Items.whiteout("./b/g"), Items.file("c/d/", "d2")],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.paths == ["a", "a/f", "abs", "b", "c", "c/d"].sortedWithRoot)
        #expect(c.mounted.entry("a/f")?.contentSHA256 == sha(bytes("f2")))
    }

    @Test func specialFilesModesAndBigIds() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [[
            Items.dir("dev"), Items.charDevice("dev/null", major: 1, minor: 3),
            Items.charDevice("dev/big", major: 300, minor: 70_000),
            Items.blockDevice("dev/loop0", major: 7, minor: 0), Items.fifo("dev/pipe", mode: 0o620),
            Items.file("suid", "s", mode: 0o4755), Items.file("sgid", "g", mode: 0o2711),
            Items.dir("tmp", mode: 0o1777), Items.dir("shared", mode: 0o3775),
            Items.file("bigids", "i", uid: 70_000, gid: 4_000_000_000),
            Items.dir("bigdir", uid: 65_536, gid: 65_537),
        ]])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("dev/null")?.type == .charDevice)
        #expect(c.mounted.entry("dev/loop0")?.type == .blockDevice)
        #expect(c.mounted.entry("dev/pipe")?.type == .fifo)
        #expect(c.mounted.entry("suid")?.mode == 0o4755)
        #expect(c.mounted.entry("tmp")?.mode == 0o1777)
        #expect(c.mounted.entry("bigids")?.uid == 70_000 && c.mounted.entry("bigids")?.gid == 4_000_000_000)
    }

    @Test func subSecondMtimesAndXattrs() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        // VFS_CAP_REVISION_2 with cap_net_bind_service, as setcap writes it.
        let capability: [UInt8] = [0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        let b = try makeImage(temp, layers: [[
            Items.file("ns", "n", mtime: 1_600_000_000, nanoseconds: 123_456_789),
            Items.file("early", "e", mtime: 5, nanoseconds: 1),
            Items.dir("dir", mtime: 1_650_000_000, nanoseconds: 999_999_999, xattrs: ["user.dir": bytes("yes")]),
            Items.file("cap", "c", mode: 0o755, xattrs: ["security.capability": capability]),
            Items.file("user", "u", xattrs: ["user.binary": [0, 1, 2, 255], "user.text": bytes("hello")]),
        ]])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("ns")?.mtimeNanoseconds == 123_456_789)
        #expect(c.mounted.entry("dir")?.mtimeNanoseconds == 999_999_999)
        #expect(c.mounted.entry("cap")?.xattrs.first?.value == capability)
        #expect(c.mounted.entry("user")?.xattrs.count == 2)
    }

    /// A PAX record with an empty value deletes the key (POSIX pax, "If the value field is
    /// zero length, it shall delete..."): Go's archive/tar, hence umoci, shows no such xattr.
    @Test func emptyXattrValueIsNoXattr() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [[Items.file("f", "f", xattrs: ["user.empty": [], "user.full": bytes("v")])]])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("f")?.xattrs.map { String(decoding: $0.name, as: UTF8.self) } == ["user.full"])
    }

    @Test func symlinksAndEmptyFiles() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let long = String(repeating: "t", count: 200) + "/" + String(repeating: "u", count: 200)
        let b = try makeImage(temp, layers: [[
            Items.file("empty", ""), Items.file("empty-ro", "", mode: 0o400),
            Items.symlink("abs", to: "/etc/passwd"), Items.symlink("rel", to: "../up/./x"),
            Items.symlink("dangling", to: "no/such/file"), Items.symlink("self", to: "self"),
            Items.symlink("long", to: long), Items.symlink("lowner", to: "x", uid: 12, gid: 34),
        ]])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("empty")?.size == 0)
        #expect(c.mounted.entry("abs")?.linkTarget == bytes("/etc/passwd"))
        #expect(c.mounted.entry("long")?.linkTarget == bytes(long))
    }

    /// 12 MiB spans several gzip checkpoints; the whole file is read and hashed on both sides.
    @Test func largeFileSpanningCheckpoints() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let big = Items.pseudoRandom(count: 12 << 20 + 12_345, seed: 7)
        let b = try makeImage(temp, layers: [
            [Items.file("before", "b"), Items.file(bytes("big"), big), Items.file("after", "a")],
            [Items.file(bytes("big2"), Array(big.reversed()))],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("big")?.contentSHA256 == sha(big))
        #expect(c.mounted.entry("big")?.size == UInt64(big.count))
    }

    @Test func nonUTF8AndLongNames() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let latin1: [UInt8] = Array("caf".utf8) + [0xE9]            // "café" in ISO-8859-1
        let broken: [UInt8] = [0xFF, 0xFE, UInt8(ascii: "x"), 0x80]
        let c255 = String(repeating: "n", count: 255)
        let deep = (0..<6).map { _ in String(repeating: "d", count: 200) }.joined(separator: "/")
        let b = try makeImage(temp, layers: [
            [Items.file(latin1, bytes("latin1")), Items.file(bytes("dir/") + broken, bytes("broken")),
             Items.file(c255, "255"), Items.file(deep + "/" + c255, "deep")],
            [Items.file(Array("dir/".utf8) + broken, bytes("upper")), Items.whiteout(latin1)],
        ])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entries[bytes("dir/") + broken]?.contentSHA256 == sha(bytes("upper")))
        #expect(c.mounted.entry(c255)?.size == 3)
        #expect(c.mounted.entry(deep + "/" + c255)?.size == 4)
    }
}

extension Array where Element == String {
    /// Expected listing of a snapshot: the paths plus the root ".", in byte order.
    var sortedWithRoot: [String] {
        (self + ["."]).sorted { (a: String, b: String) in [UInt8](a.utf8).lexicographicallyPrecedes([UInt8](b.utf8)) }
    }
}
