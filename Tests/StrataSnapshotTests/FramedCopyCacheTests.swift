#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSnapshot
import StrataSystem
import StrataTestSupport
import Testing

/// Issue 10 point 5: a zstd layer's re-encoded copy (CACHE/data/sha256/<hex>.zst) is a cache
/// file like its index: counted in the cache size, evicted under `--cache-max`, kept while the
/// layer's snapshot is mounted.
@Suite struct FramedCopyCacheTests {
    static func store() throws -> (temp: TempDirectory, store: SnapshotStore, image: String, copies: () -> [String]) {
        let temp = try TempDirectory(prefix: "strata-snapshot-unit-")
        let store = SnapshotStore(root: temp.child("root"), mounter: FakeMounter())
        let builder = try ImageBuilder(layout: temp.child("image"))
        // One zstd frame holding more than a span: indexed with a framed copy.
        try builder.addLayer(entries: [Items.file(Array("big".utf8), Items.pseudoRandom(count: 10 << 20, seed: 3))],
                             compression: .zstd)
        try builder.write(tag: "v1", config: .init(cmd: ["/bin/sh"]))
        let dir = temp.child("root") + "/cache/data/sha256"
        let copies = { () -> [String] in
            guard let d = opendir(dir) else { return [] }
            defer { closedir(d) }
            var names: [String] = []
            while let e = readdir(d) {
                let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name.hasSuffix(".zst") { names.append(name) }
            }
            return names
        }
        return (temp, store, temp.child("image") + ":v1", copies)
    }

    @Test func copyIsCountedAndEvicted() throws {
        let (temp, store, image, copies) = try Self.store()
        defer { withExtendedLifetime(temp) {} }
        try store.importImage(image, as: "base")
        let names = copies()
        #expect(names.count == 1)
        var st = stat()
        #expect(stat(temp.child("root") + "/cache/data/sha256/" + (names.first ?? ""), &st) == 0)
        let copyBytes = Int64(st.st_blocks) * 512
        #expect(copyBytes > 1 << 20)
        let before = try store.collectGarbage()
        #expect(before.cacheSize > copyBytes)   // the indexes, the copy and the tree
        let gc = try store.collectGarbage(cacheMax: 0)
        #expect(copies().isEmpty)
        #expect(gc.evictedBytes == before.cacheSize)
    }

    @Test func copyOfAMountedSnapshotIsKept() throws {
        let (temp, store, image, copies) = try Self.store()
        defer { withExtendedLifetime(temp) {} }
        try store.importImage(image, as: "base")
        try store.prepare("a", parent: "base")
        _ = try store.mounts("a")
        _ = try store.collectGarbage(cacheMax: 0)
        #expect(copies().count == 1)
        try store.unmount("a")
        _ = try store.collectGarbage(cacheMax: 0)
        #expect(copies().isEmpty)
    }
}
