#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataUnion

/// Keeps a cache directory (StrataIndex's layout: index/sha256/<hex>, data/sha256/<hex>.zst,
/// tree/sha256/<key>) under a size limit by removing the least recently used files first. "Used" is the
/// later of a file's access and modification times: the store sets both when it mounts a
/// chain (CacheUse), and a mount that indexes a layer writes its files anew.
///
/// Removing a file a running mount has open is safe (an index or re-encoded copy is held
/// open: the data lives until closed), but the layers of snapshots mounted now are kept
/// anyway, so their next mount does not pay for indexing again.
enum CacheEviction {
    struct Result { var removed = 0; var removedBytes: Int64 = 0; var remainingBytes: Int64 = 0 }

    private struct Entry { var path: String; var hex: String; var bytes: Int64; var used: Int; var kept: Bool }

    static func run(cache: String, limit: Int64?, keep: Set<String>) -> Result {
        var entries: [Entry] = []
        // A merged tree is named by its chain, not a layer: it is kept when all its layers are.
        for (dir, suffix) in [(cache + "/index/sha256", ""), (cache + "/data/sha256", ".zst"), (cache + "/tree/sha256", "")] {
            for name in ConsistencyCheck.directoryEntries(dir) {
                let path = dir + "/" + name
                // A temporary is a file a mount is writing now: never evicted (gc drops stale ones).
                guard !name.contains(".tmp."), let st = try? FileDescriptor.currentDirectory.stat(at: path),
                      (st.st_mode & S_IFMT) == S_IFREG else { continue }
                let hex = suffix.isEmpty || !name.hasSuffix(suffix) ? name : String(name.dropLast(suffix.count))
                let kept = dir.hasSuffix("/tree/sha256")
                    ? MergedTree.layerDigests(path: path).map { !$0.isEmpty && $0.allSatisfy(keep.contains) } ?? false
                    : keep.contains(hex)
                entries.append(Entry(path: path, hex: hex, bytes: Int64(st.st_blocks) * 512,
                                     used: max(st.st_atim.tv_sec, st.st_mtim.tv_sec), kept: kept))
            }
        }
        var result = Result()
        var total = entries.reduce(0) { $0 + $1.bytes }
        if let limit, total > limit {
            // Oldest use first; a layer's index and copy go together (same hex, adjacent).
            for entry in entries.sorted(by: { ($0.used, $0.hex, $0.path) < ($1.used, $1.hex, $1.path) }) {
                if total <= limit { break }
                if entry.kept { continue }
                if (try? FileDescriptor.currentDirectory.unlink(at: entry.path)) != nil {
                    total -= entry.bytes
                    result.removed += 1
                    result.removedBytes += entry.bytes
                }
            }
        }
        result.remainingBytes = total
        return result
    }
}
