#if canImport(Glibc)
import Glibc
#endif
import StrataOCI

/// Least-recently-used order for the cache: whenever the store mounts a chain, it sets the
/// modification time of the layers' index and re-encoded copy files to now. Modification time,
/// not access time, because file systems mounted relatime or noatime do not keep the latter.
enum CacheUse {
    static func touch(layers: [Descriptor], cache: String) {
        for layer in layers {
            for path in CacheFiles.paths(digestHex: layer.digest.hex, cache: cache) {
                _ = utimensat(AT_FDCWD, path, nil, 0)   // nil: both times now; ENOENT is fine
            }
        }
    }
}

/// The files StrataIndex's IndexCache keeps for one layer.
enum CacheFiles {
    static func indexPath(digestHex: String, cache: String) -> String { "\(cache)/index/sha256/\(digestHex)" }
    static func dataPath(digestHex: String, cache: String) -> String { "\(cache)/data/sha256/\(digestHex).zst" }
    static func paths(digestHex: String, cache: String) -> [String] {
        [indexPath(digestHex: digestHex, cache: cache), dataPath(digestHex: digestHex, cache: cache)]
    }
}
