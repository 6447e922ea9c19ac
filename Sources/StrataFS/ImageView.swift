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
    /// `spanCacheBytes` bounds the decoded spans held (cached, being decoded, kept for reuse)
    /// for one reader at a time: sixteen 1 MiB spans (four of the 4 MiB spans of indexes made
    /// before issue 13); the cache grows it with concurrent reads, to at most 3 × (`SpanCache`).
    /// `readRecorder`: notes the files read (`strata mount --record-reads`).
    public static func open(layers blobs: [LayerBlob], cache: LayerCache, spanCacheBytes: Int = 16 << 20,
                            readRecorder: ReadRecorder? = nil) throws -> ImageFileSystem {
        // Serving reads only the indexes' checkpoints: a cached index is checked in full only
        // when the merged tree has to be built from it.
        let opened = try parallelMap(blobs.count) { try cache.index(blobs[$0], verify: false) }.map { try $0.get() }
        var indexes = opened.map(\.index)
        var built = opened.map(\.built)
        // A cached index damaged in a section only the tree build reads is rebuilt then.
        let tree = try mergedTree(indexes, built: built, cache: cache, rebuild: { i in
            let index = try cache.build(blobs[i])
            indexes[i] = index
            built[i] = true
            return index
        }).tree
        let spans = SpanCache(capacity: spanCacheBytes)
        var data: [LayerData] = []
        for (i, blob) in blobs.enumerated() {
            data.append(try LayerData(index: indexes[i], blob: blob, number: i, cache: spans,
                                      copyPath: cache.dataPath(digestHex: blob.digestHex), indexCache: cache))
        }
        return ImageFileSystem(tree: tree, layers: data, readRecorder: readRecorder)
    }

    /// The cached merged tree of `indexes` (bottom layer first), or a new one built from them and
    /// cached (`built`). A tree that fails validation is rebuilt, like an index. `built[i]` says
    /// that index i was made by this process (so it needs no second check). `rebuild(i)` makes
    /// index i anew when its check finds it damaged (nil: the damage is an error).
    public static func mergedTree(_ indexes: [LayerIndex], built: [Bool], cache: LayerCache,
                                  rebuild: ((Int) throws -> LayerIndex)? = nil) throws -> (tree: MergedTree, built: Bool) {
        let table = MergedTreeWriter.layerTable(indexes)
        let key = SHA256Hasher.hex(of: MergedTreeWriter.key(table))
        let path = cache.treePath(keyHex: key)
        if FileIO.exists(path) {
            do { return (try MergedTree(path: path, layers: table), false) } catch {
                Log.error("\(error); rebuilding it")
            }
            cache.remove(path)
        }
        // An index built by this mount was checked as it was made; a cached one is checked now.
        let verified = try indexes.indices.map { i in
            if built[i] { return indexes[i] }
            do { return try LayerIndex(path: indexes[i].file.path, verify: true) } catch let damage as IndexDamage {
                guard let rebuild else { throw damage }
                Log.error("\(damage); rebuilding the index from the blob")
                cache.remove(indexes[i].file.path)
                return try rebuild(i)
            }
        }
        let union = try UnionTree(layers: verified)
        do {
            // Streamed into the cache: the tree's bytes are never all in memory.
            let stored = try cache.storeTree(keyHex: key) { try MergedTreeWriter.write(union, into: $0) }
            return (try MergedTree(path: stored, layers: table), true)
        } catch {
            // A cache that cannot take the tree (full, read-only) still serves this mount.
            Log.error("cache \(cache.directory): merged tree not cached: \(error)")
            let owned = OwnedBytes(MergedTreeWriter.serialize(union))
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
