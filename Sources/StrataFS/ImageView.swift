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
    public static func open(layers blobs: [LayerBlob], cache: IndexCache, spanCacheBytes: Int = 32 << 20) throws -> ImageFileSystem {
        // Serving reads only the indexes' checkpoints: a cached index is checked in full only
        // when the merged tree has to be built from it.
        let indexes = try parallelMap(blobs.count) { try cache.index(blobs[$0], verify: false).index }.map { try $0.get() }
        let tree = try mergedTree(indexes, cache: cache)
        let spans = SpanCache(capacity: getenv("STRATA_SPAN_MB").map { Int(atoi($0)) << 20 } ?? spanCacheBytes)
        var data: [LayerData] = []
        for (i, blob) in blobs.enumerated() {
            data.append(try LayerData(index: indexes[i], blob: blob, number: i, cache: spans,
                                      copyPath: cache.dataPath(digestHex: blob.digestHex)))
        }
        return ImageFileSystem(tree: tree, layers: data)
    }

    /// The cached merged tree of `indexes`, or a new one built from them and cached. A tree that
    /// fails validation is rebuilt, like an index.
    static func mergedTree(_ indexes: [LayerIndex], cache: IndexCache) throws -> MergedTree {
        let table = MergedTreeWriter.layerTable(indexes)
        let path = cache.treePath(keyHex: SHA256Hasher.hex(of: MergedTreeWriter.key(table)))
        if FileIO.exists(path) {
            if let tree = try? MergedTree(path: path, layers: table) { return tree }
            unlink(path)
        }
        let verified = try indexes.map { try LayerIndex(file: $0.file, verify: true) }
        let bytes = MergedTreeWriter.serialize(try UnionTree(layers: verified))
        do {
            try FileIO.makeDirectories(cache.directory + "/tree/sha256")
            try FileIO.writeAtomically(path, bytes)
            return try MergedTree(path: path, layers: table)
        } catch {
            // A cache that cannot take the tree (full, read-only) still serves this mount.
            Log.error("cache \(cache.directory): merged tree not cached: \(error)")
            let owned = OwnedBytes(bytes)
            return try MergedTree(bytes: owned.bytes, owner: owned, source: "(memory)", layers: table)
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
