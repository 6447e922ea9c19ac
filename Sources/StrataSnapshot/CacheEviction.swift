import StrataIndex
import StrataUnion

/// Keeps a cache directory (LayerCache) under a size limit by removing the least recently used
/// files first. "Used" is the later of a file's access and modification times: the store marks
/// a chain's layers used when it mounts it (LayerCache.touch), and a mount that indexes a layer
/// writes its files anew.
///
/// Removing a file a running mount has open is safe (an index or re-encoded copy is held
/// open: the data lives until closed), but the layers of snapshots mounted now are kept
/// anyway, so their next mount does not pay for indexing again.
enum CacheEviction {
    struct Result { var removed = 0; var removedBytes: Int64 = 0; var remainingBytes: Int64 = 0 }

    static func run(cache: LayerCache, limit: Int64?, keep: Set<String>) -> Result {
        // A temporary is a file a mount is writing now: never evicted (gc drops stale ones).
        let entries = cache.entries([.index, .data, .tree, .blob]).filter { !$0.isTemporary && $0.isRegularFile }
        // A merged tree is named by its chain, not a layer: it is kept when all its layers are.
        let kept = entries.map { entry in
            entry.kind == .tree
                ? MergedTree.layerDigests(path: entry.path).map { !$0.isEmpty && $0.allSatisfy(keep.contains) } ?? false
                : entry.key.map(keep.contains) ?? false
        }
        var result = Result()
        var total = entries.reduce(0) { $0 + $1.bytes }
        if let limit, total > limit {
            // Oldest use first; a layer's index and copy go together (same hex, adjacent).
            let order = entries.indices.sorted { a, b in
                let (x, y) = (entries[a], entries[b])
                return (x.used, x.key ?? "", x.path) < (y.used, y.key ?? "", y.path)
            }
            for i in order {
                if total <= limit { break }
                if kept[i] { continue }
                if cache.remove(entries[i]) {
                    total -= entries[i].bytes
                    result.removed += 1
                    result.removedBytes += entries[i].bytes
                }
            }
        }
        result.remainingBytes = total
        return result
    }
}
