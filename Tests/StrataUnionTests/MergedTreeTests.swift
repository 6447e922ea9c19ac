import Testing
import Glibc
import StrataIndex
import StrataSystem
@testable import StrataUnion

/// Layers with real stream sizes (the merged tree checks that file data lies inside its layer).
private final class Chain {
    let dir = "/tmp/strata-merged-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    var indexes: [LayerIndex] = []
    init() { try! FileIO.makeDirectories(dir) }
    deinit { _ = system("rm -rf '\(dir)'") }

    func add(_ entries: [IndexEntryInput], streamSize: UInt64 = 1 << 20) throws {
        var w = LayerIndexWriter()
        for e in entries { w.append(e) }
        let bytes = w.serialize(compression: .none, blobSize: streamSize, uncompressedSize: streamSize,
                                digest: [UInt8](repeating: UInt8(indexes.count + 1), count: 32), checkpoints: [])
        let path = "\(dir)/\(indexes.count)"
        try FileIO.writeAtomically(path, bytes)
        indexes.append(try LayerIndex(path: path))
    }

    var table: [UInt8] { MergedTreeWriter.layerTable(indexes) }

    func merged() throws -> (UnionTree, MergedTree, [UInt8]) {
        let union = try UnionTree(layers: indexes)
        let bytes = MergedTreeWriter.serialize(union)
        let path = "\(dir)/tree"
        try FileIO.writeAtomically(path, bytes)
        return (union, try MergedTree(path: path, layers: table), bytes)
    }

    /// Opens `bytes` changed by `edit`, with the checksum made right again: the record checks
    /// must catch what the checksum cannot (a crafted file).
    func open(_ bytes: [UInt8], checksummed: Bool = true, _ edit: (inout [UInt8]) -> Void) throws -> MergedTree {
        var b = bytes
        edit(&b)
        if checksummed {
            let sum = b.withUnsafeBytes { fileChecksum($0, skipping: MergedTreeFormat.Header.checksum.range) }
            withUnsafeBytes(of: sum.littleEndian) { for (i, x) in $0.enumerated() { b[MergedTreeFormat.Header.checksum.offset + i] = x } }
        }
        let path = "\(dir)/edited"
        try FileIO.writeAtomically(path, b)
        return try MergedTree(path: path, layers: table)
    }
}

private func entry(_ path: String, _ kind: IndexEntryKind, mode: UInt32 = 0o644, uid: UInt32 = 0, size: UInt64 = 0,
                   offset: UInt64 = 0, target: String = "", xattrs: [(String, String)] = [],
                   sparse: [(UInt64, UInt64)]? = nil, stored: UInt64 = 0) -> IndexEntryInput {
    IndexEntryInput(path: Array(path.utf8), linkTarget: Array(target.utf8), kind: kind, mode: mode, uid: uid, gid: uid + 1,
                    size: size, dataOffset: offset, storedSize: stored, mtimeSeconds: 1_700_000_000 + Int64(size),
                    mtimeNanoseconds: 7, devMajor: 1, devMinor: 3,
                    xattrs: xattrs.map { (Array($0.0.utf8), Array($0.1.utf8)) },
                    sparse: sparse.map { $0.map { (offset: $0.0, length: $0.1) } })
}

/// Every path the union shows, walked from the root: (path, inode).
private func walk(_ children: (UInt32) -> [(String, UInt32)], isDirectory: (UInt32) -> Bool) -> [(String, UInt32)] {
    var out: [(String, UInt32)] = []
    var work: [(String, UInt32)] = [("", 0)]
    while let (path, inode) = work.popLast() {
        out.append((path, inode))
        if isDirectory(inode) {
            for (name, child) in children(inode) { work.append((path + "/" + name, child)) }
        }
    }
    return out.sorted { $0.0 < $1.0 }
}

@Suite struct MergedTreeTests {
    private func sample() throws -> Chain {
        let c = Chain()
        try c.add([entry("", .directory, mode: 0o755),
                   entry("etc", .directory, mode: 0o755), entry("etc/passwd", .regular, size: 100, offset: 512),
                   entry("etc/shadow", .regular, mode: 0o600, size: 50, offset: 1024),
                   entry("bin", .directory), entry("bin/sh", .regular, mode: 0o755, size: 300, offset: 2048,
                                                    xattrs: [("security.capability", "cap"), ("user.x", "")]),
                   entry("bin/bash", .hardlink, target: "bin/sh"),
                   entry("dev/null", .characterDevice, mode: 0o666), entry("dev/sda", .blockDevice, mode: 0o660),
                   entry("run/fifo", .fifo), entry("old", .directory), entry("old/gone", .regular, size: 1, offset: 4096),
                   entry("lib", .symlink, target: "usr/lib"), entry("usr/lib/libc.so", .regular, size: 9, offset: 8192)])
        try c.add([entry("old", .opaque), entry("old/new", .regular, size: 2, offset: 512),
                   entry("etc/shadow", .whiteout), entry("etc/passwd", .regular, mode: 0o640, uid: 7, size: 3, offset: 1024),
                   entry("var/sparse", .regular, size: 1 << 30, offset: 2048, sparse: [(0, 10), (1 << 29, 20)], stored: 30)])
        return c
    }

    @Test func servesWhatTheUnionTreeShows() throws {
        let c = try sample()
        let (union, merged, _) = try c.merged()
        let a = walk({ d in union.children[Int(d)].map { (String(decoding: $0.name, as: UTF8.self), $0.inode) } },
                     isDirectory: { union.isDirectory[Int($0)] })
        let b = walk({ d in merged.children(of: d).map { (String(decoding: $0.name, as: UTF8.self), $0.inode) } },
                     isDirectory: { merged.isDirectory($0) })
        #expect(a.map(\.0) == b.map(\.0))
        #expect(a.map(\.0).contains("/old/new") && !a.map(\.0).contains("/old/gone") && !a.map(\.0).contains("/etc/shadow"))
        for ((path, u), (_, m)) in zip(a, b) {
            #expect(union.isDirectory[Int(u)] == merged.isDirectory(m), "\(path)")
            #expect(union.nlink[Int(u)] == merged.linkCount(m), "\(path)")
            if let e = union.entry(of: u) {
                #expect(e.mode & 0o7777 == merged.mode(m) & 0o7777, "\(path)")
                #expect(e.uid == merged.stat(m).uid && e.gid == merged.stat(m).gid, "\(path)")
                #expect(e.mtimeSeconds == merged.stat(m).mtimeSeconds && merged.stat(m).mtimeNanoseconds == 7, "\(path)")
                if e.kind == .regular {
                    #expect(e.size == merged.size(m) && e.dataOffset == merged.dataOffset(m), "\(path)")
                    #expect(Int(union.sources[Int(u)].layer) == merged.layer(m), "\(path)")
                }
            } else {
                #expect(merged.mode(m) == 0o040755 && merged.stat(m).uid == 0, "\(path)")
            }
            // Lookup by name from the parent finds the same inode.
            if path != "" {
                let name = Array(path.split(separator: "/").last!.utf8)
                let parent = merged.lookupPath(String(path[..<path.lastIndex(of: "/")!]))!
                #expect(name.withUnsafeBytes { merged.lookup(parent, $0) } == m, "\(path)")
            }
        }
        #expect(Array("x".utf8).withUnsafeBytes { merged.lookup(0, $0) } == nil)
        #expect(Array("passwd".utf8).withUnsafeBytes { merged.lookup(merged.lookupPath("/bin")!, $0) } == nil)
    }

    @Test func recordsKeepEveryKindsDetails() throws {
        let (_, t, _) = try sample().merged()
        let sh = t.lookupPath("/bin/sh")!, bash = t.lookupPath("/bin/bash")!
        #expect(sh == bash && t.linkCount(sh) == 2)
        #expect(t.xattrCount(sh) == 2)
        #expect(String(decoding: t.xattr(sh, 0).name, as: UTF8.self) == "security.capability")
        #expect(Array(t.xattr(sh, 0).value) == Array("cap".utf8) && t.xattr(sh, 1).value.count == 0)
        let lib = t.lookupPath("/lib")!
        #expect(t.symlinkTarget(lib).map { Array($0) } == Array("usr/lib".utf8) && t.size(lib) == 7)
        #expect(t.mode(t.lookupPath("/dev/null")!) == 0o020666 && t.stat(t.lookupPath("/dev/null")!).rdev == 0x103)
        #expect(t.mode(t.lookupPath("/dev/sda")!) & 0o170000 == 0o060000)
        #expect(t.mode(t.lookupPath("/run/fifo")!) == 0o010644)
        let passwd = t.lookupPath("/etc/passwd")!
        #expect(t.stat(passwd).uid == 7 && t.layer(passwd) == 1 && t.size(passwd) == 3)
        let sparse = t.lookupPath("/var/sparse")!
        #expect(t.isSparse(sparse) && t.stat(sparse).blocks == 1 && t.sparseCount(sparse) == 2)
        #expect(t.sparseSegment(sparse, 1) == (1 << 29, 20))
        #expect(t.parentOf(t.lookupPath("/usr/lib")!) == t.lookupPath("/usr")! && t.parentOf(0) == 0)
        #expect(t.linkCount(0) == 2 + 7)   // etc bin dev run old usr var (lib is a symlink)
    }

    @Test func sameLayersGiveTheSameBytes() throws {
        let c = try sample()
        #expect(try c.merged().2 == c.merged().2)
    }

    @Test func damagedOrCraftedFilesAreRefused() throws {
        let c = try sample()
        let (_, tree, bytes) = try c.merged()
        let passwd = Int(tree.lookupPath("/etc/passwd")!), etc = Int(tree.lookupPath("/etc")!)
        let F = MergedTreeFormat.self
        func refused(_ why: String, checksummed: Bool = true, _ edit: (inout [UInt8]) -> Void) {
            #expect(throws: UnionError.self, "\(why)") { try c.open(bytes, checksummed: checksummed, edit) }
        }
        func set32(_ b: inout [UInt8], _ at: Int, _ v: UInt32) {
            withUnsafeBytes(of: v.littleEndian) { for (i, x) in $0.enumerated() { b[at + i] = x } }
        }
        func off(_ field: FormatField) -> Int { bytes.withUnsafeBytes { Int($0.u64(0, field)) } }
        refused("bit flip", checksummed: false) { $0[$0.count / 2] ^= 1 }
        refused("truncated", checksummed: false) { $0.removeLast(3) }
        refused("magic") { $0[0] = 0 }
        refused("version") { set32(&$0, F.Header.version.offset, 99) }
        refused("child points past the inodes") { set32(&$0, off(F.Header.children), 1_000_000) }
        refused("directory's children past the table") { set32(&$0, off(F.Header.inodes) + etc * F.Inode.size + F.Inode.data.offset + 4, 1_000_000) }
        refused("file data past its layer's stream") { set32(&$0, off(F.Header.inodes) + passwd * F.Inode.size + F.Inode.data.offset + 4, 1) }
        refused("parent past the inodes") { set32(&$0, off(F.Header.inodes) + etc * F.Inode.size + F.Inode.fileSize.offset, 1_000_000) }
        refused("slot table without an empty slot") { b in
            let slots = off(F.Header.slots), count = (off(F.Header.extras) - slots) / 4
            for i in 0..<count { set32(&b, slots + i * 4, 0) }
        }
        refused("name past the end") { set32(&$0, off(F.Header.children) + 4, 1_000_000) }
        refused("names out of order") { set32(&$0, off(F.Header.children) + F.Child.size + 4, 0); set32(&$0, off(F.Header.children) + 4, 3) }
        refused("symlink target past the end") { set32(&$0, off(F.Header.inodes) + Int(tree.lookupPath("/lib")!) * F.Inode.size + F.Inode.data.offset, 1_000_000) }
        // Another chain (a rebuilt index has another checksum) does not take this tree.
        let other = try sample()
        try other.add([entry("x", .regular, size: 1, offset: 0)])
        let table = other.table
        try bytes.withUnsafeBytes { b in
            #expect(throws: UnionError.self) { try MergedTree(bytes: b, owner: other, source: "t", layers: table) }
            _ = try MergedTree(bytes: b, owner: other, source: "t", layers: c.table)
        }
    }
}

extension MergedTree {
    func lookupPath(_ path: String) -> UInt32? {
        var node: UInt32 = 0
        for part in path.split(separator: "/") {
            guard let next = Array(part.utf8).withUnsafeBytes({ lookup(node, $0) }) else { return nil }
            node = next
        }
        return node
    }
}
