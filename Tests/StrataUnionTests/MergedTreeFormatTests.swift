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
    @Test func fixedTreeKeepsItsBytes() throws {
        let dir = try TempDirectory()
        let bytes = MergedTreeWriter.serialize(try UnionTree(layers: try fixedLayers(dir)))
        #expect(SHA256Hasher.hex(of: bytes) == "13f057ac7ceac6465aad3b2a19364f026331a676da0931d23eba6ae2ccd23f6a")
    }
}
