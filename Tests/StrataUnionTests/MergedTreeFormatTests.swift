import Testing
import Glibc
import StrataHash
import StrataIndex
import StrataSystem
import StrataTestSupport
@testable import StrataUnion

/// Two fixed layers with every kind of entry: the merged tree's golden input.
private func fixedLayers(_ dir: TempDirectory) throws -> [LayerIndex] {
    func e(_ path: String, _ kind: IndexEntryKind, mode: UInt32 = 0o644, size: UInt64 = 0, offset: UInt64 = 0,
           target: String = "", xattrs: [(String, String)] = [], sparse: [(UInt64, UInt64)]? = nil) -> IndexEntryInput {
        IndexEntryInput(path: Array(path.utf8), linkTarget: Array(target.utf8), kind: kind, mode: mode, uid: UInt32(path.count),
                        gid: 5, size: size, dataOffset: offset, storedSize: sparse == nil ? 0 : 40, mtimeSeconds: 1_700_000_000 + Int64(path.count),
                        mtimeNanoseconds: 9, devMajor: 4, devMinor: 300,
                        xattrs: xattrs.map { (Array($0.0.utf8), Array($0.1.utf8)) }, sparse: sparse.map { $0.map { (offset: $0.0, length: $0.1) } })
    }
    let layers: [[IndexEntryInput]] = [
        [e("", .directory, mode: 0o755), e("etc", .directory, mode: 0o755), e("etc/passwd", .regular, size: 100, offset: 512),
         e("etc/shadow", .regular, mode: 0o600, size: 50, offset: 1024),
         e("bin/sh", .regular, mode: 0o755, size: 300, offset: 2048, xattrs: [("security.capability", "cap"), ("user.x", "")]),
         e("bin/bash", .hardlink, target: "bin/sh"), e("dev/null", .characterDevice, mode: 0o666), e("dev/sda", .blockDevice),
         e("run/fifo", .fifo), e("old/gone", .regular, size: 1, offset: 4096), e("lib", .symlink, mode: 0o644, target: "usr/lib"),
         e("usr/lib/libc.so", .regular, size: 9, offset: 8192)],
        [e("old", .opaque), e("old/new", .regular, size: 2, offset: 512), e("etc/shadow", .whiteout),
         e("etc/passwd", .regular, mode: 0o640, size: 3, offset: 1024),
         e("var/sparse", .regular, size: 1 << 30, offset: 2048, sparse: [(0, 10), (1 << 29, 30)])],
    ]
    return try layers.enumerated().map { n, entries in
        var w = LayerIndexWriter()
        for x in entries { w.append(x) }
        let bytes = w.serialize(compression: .gzip, blobSize: 9000, uncompressedSize: 1 << 20,
                                digest: [UInt8](repeating: UInt8(n + 1), count: 32), checkpoints: [])
        let path = "\(dir.path)/\(n)"
        try FileIO.writeAtomically(path, bytes)
        return try LayerIndex(path: path)
    }
}

@Suite struct MergedTreeFormatTests {
    /// The bytes of a fixed tree, recorded before the format was described by named fields.
    /// Its layer table holds each index's checksum, so a new index format (6: the checkpoint
    /// spacing in the index header; 7 and 8: the version field) changes these bytes
    /// without changing the tree's format. So does the tree's own version, held in its header
    /// (3: implied directories inside set-group-ID ones).
    @Test func fixedTreeKeepsItsBytes() throws {
        let dir = try TempDirectory()
        let bytes = MergedTreeWriter.serialize(try UnionTree(layers: try fixedLayers(dir)))
        #expect(SHA256Hasher.hex(of: bytes) == "42f03f60d90fdee23bd54440d257afce6046dfc50252b7d97334aec0efd3e56d")
    }
}


@Suite struct MergedTreeFieldTests {
    @Test func fieldsTileEachRecord() {
        typealias F = MergedTreeFormat
        #expect(FormatField.tile(F.Header.all, size: F.Header.size))
        #expect(FormatField.tile(F.Layer.all, size: F.Layer.size))
        #expect(FormatField.tile(F.Attributes.all, size: F.Attributes.size))
        #expect(FormatField.tile(F.Inode.all, size: F.Inode.size))
        #expect(FormatField.tile(F.Child.all, size: F.Child.size))
        #expect(FormatField.tile(F.Slot.all, size: F.Slot.size))
        #expect(FormatField.tile(F.Extra.all, size: F.Extra.size))
        #expect(FormatField.tile(F.Xattr.all, size: F.Xattr.size))
        #expect(FormatField.tile(F.Sparse.all, size: F.Sparse.size))
        for s in F.file.sections { #expect(F.Header.all.contains(s.start) && F.Header.all.contains(s.count), "\(s.name)") }
    }

    /// Fields written with values of their own read back by name: owners, times and modes per
    /// path, sizes, offsets, layers, xattrs and sparse maps, device numbers, link counts.
    @Test func everyFieldReadsBackByName() throws {
        let dir = try TempDirectory()
        let indexes = try fixedLayers(dir)
        let bytes = MergedTreeWriter.serialize(try UnionTree(layers: indexes))
        let path = dir.path + "/tree"
        try FileIO.writeAtomically(path, bytes)
        let t = try MergedTree(path: path, layers: MergedTreeWriter.layerTable(indexes))
        func at(_ p: String) throws -> UInt32 { try #require(t.lookupPath(p), "\(p)") }

        let sparse = try at("/var/sparse"), s = t.stat(sparse)
        #expect(s.mode == 0o100644 && s.uid == 10 && s.gid == 5 && s.mtimeSeconds == 1_700_000_010 && s.mtimeNanoseconds == 9)
        #expect(s.size == 1 << 30 && s.blocks == 1 && t.dataOffset(sparse) == 2048 && t.layer(sparse) == 1 && t.isSparse(sparse))
        #expect(t.sparseCount(sparse) == 2 && t.sparseSegment(sparse, 0) == (0, 10) && t.sparseSegment(sparse, 1) == (1 << 29, 30))
        let sh = try at("/bin/sh")
        #expect(t.linkCount(sh) == 2 && t.xattrCount(sh) == 2 && t.stat(sh).uid == 6 && t.mode(sh) == 0o100755)
        #expect(String(decoding: t.xattr(sh, 0).name, as: UTF8.self) == "security.capability")
        #expect(Array(t.xattr(sh, 0).value) == Array("cap".utf8) && String(decoding: t.xattr(sh, 1).name, as: UTF8.self) == "user.x")
        let passwd = try at("/etc/passwd")
        #expect(t.mode(passwd) == 0o100640 && t.size(passwd) == 3 && t.dataOffset(passwd) == 1024 && t.layer(passwd) == 1)
        let null = try at("/dev/null"), lib = try at("/lib")
        #expect(t.stat(null).rdev == DeviceNumber.make(major: 4, minor: 300))
        #expect(t.symlinkTarget(lib).map { Array($0) } == Array("usr/lib".utf8))
        let usr = try at("/usr"), usrLib = try at("/usr/lib")
        #expect(t.parentOf(usrLib) == usr && t.isDirectory(usr))
        #expect(MergedTree.layerDigests(path: path) == indexes.map(\.digestHex))
        bytes.withUnsafeBytes { b in
            typealias H = MergedTreeFormat.Header
            #expect(b.bytes(0, H.magic) == Array("STRATATR".utf8) && b.u32(0, H.version) == MergedTreeFormat.version)
            #expect(b.u64(0, H.totalLength) == UInt64(bytes.count) && b.u32(0, H.pad) == 0)
            let layer = MergedTreeFormat.layers.offset(in: b) + MergedTreeFormat.Layer.size
            #expect(b.u64(layer, MergedTreeFormat.Layer.streamSize) == 1 << 20)
            #expect(b.u64(layer, MergedTreeFormat.Layer.indexChecksum) == indexes[1].checksum)
        }
    }
}
