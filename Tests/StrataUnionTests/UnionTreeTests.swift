import Testing
import Glibc
import StrataIndex
import StrataSystem
@testable import StrataUnion

/// Layer indexes written directly (no tar, no compression), to pin down the union rules alone.
private final class Layers {
    let dir = "/tmp/strata-union-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    var indexes: [LayerIndex] = []
    init() { try! FileIO.makeDirectories(dir) }
    deinit { _ = system("rm -rf '\(dir)'") }

    func add(_ entries: [IndexEntryInput]) throws {
        var w = LayerIndexWriter()
        for e in entries { w.append(e) }
        let bytes = w.serialize(compression: .none, blobSize: 0, uncompressedSize: 0, digest: [UInt8](repeating: UInt8(indexes.count), count: 32), checkpoints: [])
        let path = "\(dir)/\(indexes.count)"
        try FileIO.writeAtomically(path, bytes)
        indexes.append(try LayerIndex(path: path))
    }

    func tree() throws -> UnionTree { try UnionTree(layers: indexes) }
}

private func file(_ path: String, mode: UInt32 = 0o644, size: UInt64 = 1) -> IndexEntryInput {
    IndexEntryInput(path: Array(path.utf8), kind: .regular, mode: mode, size: size)
}
private func dir(_ path: String, mode: UInt32 = 0o755, uid: UInt32 = 0) -> IndexEntryInput {
    IndexEntryInput(path: Array(path.utf8), kind: .directory, mode: mode, uid: uid)
}
private func whiteout(_ path: String) -> IndexEntryInput { IndexEntryInput(path: Array(path.utf8), kind: .whiteout) }
private func opaque(_ path: String) -> IndexEntryInput { IndexEntryInput(path: Array(path.utf8), kind: .opaque) }
private func symlink(_ path: String, _ target: String) -> IndexEntryInput {
    IndexEntryInput(path: Array(path.utf8), linkTarget: Array(target.utf8), kind: .symlink)
}
private func hardlink(_ path: String, _ target: String) -> IndexEntryInput {
    IndexEntryInput(path: Array(path.utf8), linkTarget: Array(target.utf8), kind: .hardlink)
}

extension UnionTree {
    /// Resolves a path without following symlinks; nil when absent.
    func find(_ path: String) -> UInt32? {
        var node: UInt32 = 0
        for part in path.split(separator: "/") {
            guard let next = Array(part.utf8).withUnsafeBytes({ lookup(node, $0) }) else { return nil }
            node = next
        }
        return node
    }
    func names(_ path: String) -> [String] {
        guard let d = find(path) else { return [] }
        return children[Int(d)].map { String(decoding: $0.name, as: UTF8.self) }.sorted()
    }
    func mode(_ path: String) -> UInt32? { find(path).flatMap { entry(of: $0)?.mode } }
}

@Suite struct UnionTreeTests {
    @Test func laterLayersWinAndDirectoriesMerge() throws {
        let l = Layers()
        try l.add([dir("etc", mode: 0o755), file("etc/a", mode: 0o600), file("etc/b")])
        try l.add([dir("etc", mode: 0o700, uid: 5), file("etc/a", mode: 0o640), file("etc/c")])
        let t = try l.tree()
        #expect(t.names("etc") == ["a", "b", "c"])
        #expect(t.mode("etc/a") == 0o640)
        #expect(t.mode("etc") == 0o700)
        #expect(t.entry(of: t.find("etc")!)?.uid == 5)
    }

    @Test func whiteoutHidesLowerSubtreeOnly() throws {
        let l = Layers()
        try l.add([dir("a"), dir("a/sub"), file("a/sub/x"), file("a/keep")])
        // The whiteout comes after the re-created entry in tar order: its own layer's entry stays.
        try l.add([file("a/sub"), whiteout("a/sub"), whiteout("a/missing")])
        let t = try l.tree()
        #expect(t.names("a") == ["keep", "sub"])
        #expect(!t.isDirectory[Int(t.find("a/sub")!)])
        #expect(t.find("a/sub/x") == nil)
    }

    @Test func opaqueDirectoryHidesLowerChildrenWhateverTheOrder() throws {
        let l = Layers()
        try l.add([dir("d"), file("d/old1"), dir("d/olddir"), file("d/olddir/f")])
        try l.add([file("d/new1"), opaque("d"), dir("d"), file("d/new2")])
        let t = try l.tree()
        #expect(t.names("d") == ["new1", "new2"])
        #expect(t.nlink[Int(t.find("d")!)] == 2)
    }

    @Test func nonDirectoryOverDirectoryAndBack() throws {
        let l = Layers()
        try l.add([dir("x"), file("x/child"), file("y")])
        try l.add([symlink("x", "y"), dir("y"), file("y/inside")])
        let t = try l.tree()
        #expect(t.find("x/child") == nil)
        #expect(t.entry(of: t.find("x")!)?.kind == .symlink)
        #expect(t.isDirectory[Int(t.find("y")!)])
        #expect(t.names("y") == ["inside"])
    }

    @Test func duplicatePathInOneLayerLastWins() throws {
        let l = Layers()
        try l.add([file("f", mode: 0o600), file("f", mode: 0o644), dir("g", mode: 0o700), dir("g", mode: 0o711)])
        let t = try l.tree()
        #expect(t.names("") == ["f", "g"])
        #expect(t.mode("f") == 0o644)
        #expect(t.mode("g") == 0o711)
    }

    @Test func hardlinksShareAnInodeAcrossLayers() throws {
        let l = Layers()
        try l.add([dir("bin"), file("bin/a")])
        try l.add([hardlink("bin/b", "bin/a"), hardlink("c", "bin/b")])
        let t = try l.tree()
        let a = t.find("bin/a")!
        #expect(t.find("bin/b") == a)
        #expect(t.find("c") == a)
        #expect(t.nlink[Int(a)] == 3)
        // A later layer removing one name lowers the count.
        try l.add([whiteout("c")])
        let t2 = try l.tree()
        #expect(t2.nlink[Int(t2.find("bin/a")!)] == 2)
    }

    @Test func hardlinkToMissingTargetIsAnError() throws {
        let l = Layers()
        try l.add([hardlink("b", "nothing")])
        #expect(throws: UnionError.self) { try l.tree() }
    }

    @Test func impliedDirectoriesAndRootEntry() throws {
        let l = Layers()
        try l.add([file("usr/share/doc/x"), IndexEntryInput(path: [], kind: .directory, mode: 0o700)])
        let t = try l.tree()
        let usr = t.find("usr")!
        #expect(t.entry(of: usr) == nil)   // implied: served as 0755 0:0
        #expect(t.isDirectory[Int(usr)])
        #expect(t.entry(of: 0)?.mode == 0o700)
        #expect(t.nlink[0] == 3)
    }

    @Test func parentSymlinksAreFollowedInsideTheRoot() throws {
        let l = Layers()
        try l.add([dir("usr"), dir("usr/lib"), symlink("lib", "usr/lib"), symlink("abs", "/usr/../usr/lib")])
        try l.add([file("lib/libc.so"), file("abs/libm.so"), whiteout("lib/libc.so")])
        let t = try l.tree()
        #expect(t.names("usr/lib") == ["libc.so", "libm.so"])
        #expect(t.entry(of: t.find("lib")!)?.kind == .symlink)
    }

    @Test func symlinkLoopIsAnError() throws {
        let l = Layers()
        try l.add([symlink("a", "b"), symlink("b", "a")])
        try l.add([file("a/x")])
        #expect(throws: UnionError.self) { try l.tree() }
    }

    @Test func parentThatIsAFileIsAnError() throws {
        let l = Layers()
        try l.add([file("f"), file("f/x")])
        #expect(throws: UnionError.self) { try l.tree() }
    }

    /// mkdir inside a set-group-ID directory gives the new directory that group and the bit:
    /// an extractor's implied directories there have them (umoci, containerd), and so, in turn,
    /// do the implied directories inside those.
    @Test func impliedDirectoriesInsideSetgidDirectoryTakeItsGroup() throws {
        let l = Layers()
        try l.add([IndexEntryInput(path: Array("srv".utf8), kind: .directory, mode: 0o2775, gid: 50), dir("plain"),
                   file("srv/a/b/f"), file("plain/c/f")])
        let t = try l.tree()
        #expect(t.impliedGroups[t.find("srv/a")!] == 50)
        #expect(t.impliedGroups[t.find("srv/a/b")!] == 50)
        #expect(t.impliedGroups[t.find("plain/c")!] == nil)
        #expect(t.entry(of: t.find("srv/a")!) == nil)
    }

    /// An extractor removes the directory a hardlink replaces, with what it holds: a link to a
    /// file inside it has nothing left to point at (umoci and containerd fail there too).
    @Test func hardlinkReplacingTheDirectoryOfItsTargetIsAnError() throws {
        let l = Layers()
        try l.add([dir("a"), dir("a/b"), file("a/b/f"), hardlink("a", "a/b/f")])
        #expect(throws: UnionError.self) { try l.tree() }
        let across = Layers()
        try across.add([dir("a"), file("a/f")])
        try across.add([hardlink("a", "a/f")])
        #expect(throws: UnionError.self) { try across.tree() }
        // A target outside the directory it replaces is fine.
        let fine = Layers()
        try fine.add([dir("a"), file("a/f"), file("g")])
        try fine.add([hardlink("a", "g")])
        let t = try fine.tree()
        #expect(t.find("a") == t.find("g"))
        #expect(t.nlink[Int(t.find("g")!)] == 2)
    }
}
