import Testing
import Glibc
import StrataIndex
import StrataSystem
import StrataTestSupport
@testable import StrataUnion

/// What a layer's metadata costs on disk per entry: its index and the merged tree together
/// (issue 13: at most 100 bytes per entry on a node_modules-like tree; ratarmount's SQLite
/// index takes about 140).
@Suite struct MetadataSizeTests {
    /// 200,000 entries laid out like image b: packages of a few files and three directories
    /// of nine files each, some under scopes, names and sizes as npm packages have them.
    static func nodeModules(_ count: Int) -> [IndexEntryInput] {
        var out: [IndexEntryInput] = [IndexEntryInput(path: Array("app".utf8), kind: .directory, mode: 0o755),
                                      IndexEntryInput(path: Array("app/node_modules".utf8), kind: .directory, mode: 0o755)]
        var offset: UInt64 = 1536
        func add(_ path: String, _ kind: IndexEntryKind, size: UInt64 = 0) {
            out.append(IndexEntryInput(path: Array(path.utf8), kind: kind, mode: kind == .directory ? 0o755 : 0o644,
                                       uid: 1000, gid: 1000, size: size, dataOffset: offset, storedSize: size,
                                       mtimeSeconds: 1_700_000_000))
            offset += (size + 511) / 512 * 512 + 512
        }
        var p = 0
        while out.count < count {
            let base = p % 3 == 0 ? "app/node_modules/@scope\(p % 50)" : "app/node_modules"
            if p % 3 == 0 && p < 150 { add(base, .directory) }
            let d = "\(base)/package-\(p)"
            add(d, .directory)
            for f in ["package.json", "README.md", "LICENSE", "index.js"] { add("\(d)/\(f)", .regular, size: UInt64(80 + p * 7 % 2400)) }
            for sub in ["lib", "dist", "test"] {
                add("\(d)/\(sub)", .directory)
                for i in 0..<9 { add("\(d)/\(sub)/module\(i).js", .regular, size: UInt64(60 + (p * 13 + i * 101) % 2900)) }
            }
            p += 1
        }
        return out
    }

    @Test func indexAndTreeTakeAtMost100BytesPerEntry() throws {
        let entries = Self.nodeModules(200_000)
        var w = LayerIndexWriter()
        for e in entries { w.append(e) }
        let index = w.serialize(compression: .gzip, blobSize: 1, uncompressedSize: 1 << 40,
                                digest: [UInt8](repeating: 9, count: 32), checkpoints: [])
        let dir = try TempDirectory()
        try FileIO.writeAtomically(dir.child("index"), index)
        let union = try UnionTree(layers: [try LayerIndex(path: dir.child("index"))])
        let tree = MergedTreeWriter.serialize(union)
        let perEntry = Double(index.count + tree.count) / Double(entries.count)
        #expect(union.inodeCount == entries.count + 1)
        #expect(perEntry <= 100, "index \(index.count) + merged tree \(tree.count) bytes for \(entries.count) entries: \(perEntry) per entry")
    }
}
