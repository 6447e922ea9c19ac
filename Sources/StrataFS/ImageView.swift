import StrataHash
#if canImport(Glibc)
import Glibc
#endif
import StrataIndex
import StrataSystem
import StrataUnion

/// Opens an image's layers as one filesystem: indexes each layer (from the cache, or by reading
/// the blob once, layers in parallel), maps the merged tree of the chain (building and caching
/// it on the first mount of this chain) and makes the layer readers.
public enum ImageView {
    /// `spanCacheBytes` bounds the decoded spans held (cached, being decoded, kept for reuse):
    /// four 4 MiB spans, enough for a sequential reader with read-ahead on two layers at once.
    public static func open(layers blobs: [LayerBlob], cache: IndexCache, spanCacheBytes: Int = 16 << 20) throws -> ImageFileSystem {
        // Serving reads only the indexes' checkpoints: a cached index is checked in full only
        // when the merged tree has to be built from it.
        let opened = try parallelMap(blobs.count) { try cache.index(blobs[$0], verify: false) }.map { try $0.get() }
        let indexes = opened.map(\.index)
        let tree = try mergedTree(indexes, built: opened.map(\.built), cache: cache).tree
        let spans = SpanCache(capacity: spanCacheBytes)
        var data: [LayerData] = []
        for (i, blob) in blobs.enumerated() {
            data.append(try LayerData(index: indexes[i], blob: blob, number: i, cache: spans,
                                      copyPath: cache.dataPath(digestHex: blob.digestHex)))
        }
        return ImageFileSystem(tree: tree, layers: data)
    }

    /// The cached merged tree of `indexes` (bottom layer first), or a new one built from them and
    /// cached (`built`). A tree that fails validation is rebuilt, like an index. `built[i]` says
    /// that index i was made by this process (so it needs no second check).
    public static func mergedTree(_ indexes: [LayerIndex], built: [Bool], cache: IndexCache) throws -> (tree: MergedTree, built: Bool) {
        let table = MergedTreeWriter.layerTable(indexes)
        let path = cache.treePath(keyHex: SHA256Hasher.hex(of: MergedTreeWriter.key(table)))
        if FileIO.exists(path) {
            if let tree = try? MergedTree(path: path, layers: table) { return (tree, false) }
            unlink(path)
        }
        // An index built by this mount was checked as it was made; a cached one is checked now.
        let verified = try indexes.indices.map { built[$0] ? indexes[$0] : try LayerIndex(path: indexes[$0].file.path, verify: true) }
        let bytes = MergedTreeWriter.serialize(try UnionTree(layers: verified))
        do {
            try FileIO.makeDirectories(cache.directory + "/tree/sha256")
            // Not fsynced: the tree is checked at every mount and made again if a crash lost it.
            try FileIO.writeAtomically(path, bytes, durable: false)
            return (try MergedTree(path: path, layers: table), true)
        } catch {
            // A cache that cannot take the tree (full, read-only) still serves this mount.
            Log.error("cache \(cache.directory): merged tree not cached: \(error)")
            let owned = OwnedBytes(bytes)
            return (try MergedTree(bytes: owned.bytes, owner: owned, source: "(memory)", layers: table), true)
        }
    }
}

/// Bytes that stay at one address as long as this object lives.
final class OwnedBytes {
    let bytes: UnsafeRawBufferPointer
    init(_ array: [UInt8]) {
        let b = UnsafeMutableRawBufferPointer.allocate(byteCount: max(array.count, 1), alignment: 16)
        array.withUnsafeBytes { b.copyMemory(from: $0) }
        bytes = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(b)[0..<array.count])
    }
    deinit { bytes.baseAddress.map { UnsafeMutableRawPointer(mutating: $0).deallocate() } }
}
