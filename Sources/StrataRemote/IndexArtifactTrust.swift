import StrataIndex
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Which cached layer indexes came from a registry artifact and are not yet confirmed.
///
///   CACHE/untrusted/sha256/<layer hex>   "sha256:<artifact hex>\n": the artifact it came from
///
/// An index installed from an artifact is usable at once (its span digests verify every span
/// fetched) but not trusted: anyone who can push to the repository wrote it, and a forged
/// checkpoint window changes what authentic compressed bytes decode to. It is trusted once
/// `IndexArtifacts.confirm` has re-derived it from the complete, verified blob and found the
/// same bytes. The record that makes a cached index trusted elsewhere is its diff_id file
/// (`LayerCache.index` rebuilds an index that has none), so installing removes that file and
/// confirming writes it: an unconfirmed index is never taken as verified by a local mount.
/// Order keeps a crash safe: the marker is written before the index, and removed after the
/// diff_id file is written.
enum IndexArtifactTrust {
    static func markerDirectory(_ cache: LayerCache) -> String { "\(cache.directory)/untrusted/sha256" }
    static func markerPath(_ cache: LayerCache, _ hex: String) -> String { "\(markerDirectory(cache))/\(hex)" }

    /// Whether the layer's cached index is an unconfirmed one from an artifact: a marker and no
    /// diff_id record (an index the layer's blob was indexed into locally has one).
    static func isUntrusted(_ cache: LayerCache, _ hex: String) -> Bool {
        FileIO.exists(markerPath(cache, hex)) && cache.verifiedDiffID(digestHex: hex) == nil
    }

    /// The artifact an untrusted index came from, as its marker names it.
    static func source(_ cache: LayerCache, _ hex: String) -> String? {
        guard let bytes = try? FileIO.readAll(markerPath(cache, hex)) else { return nil }
        let text = String(decoding: bytes, as: UTF8.self).trimmingNewline()
        return text.isEmpty ? nil : text
    }

    /// Puts an artifact's index bytes (already validated) in the cache as the layer's index,
    /// marked untrusted.
    static func install(_ cache: LayerCache, hex: String, bytes: [UInt8], artifact: String) throws {
        try FileIO.makeDirectories(markerDirectory(cache))
        try FileIO.writeAtomically(markerPath(cache, hex), Array("\(artifact)\n".utf8))
        cache.remove(cache.diffIDPath(digestHex: hex))
        try FileIO.makeDirectories(parent(cache.indexPath(digestHex: hex)))
        try FileIO.writeAtomically(cache.indexPath(digestHex: hex), bytes)
    }

    /// The index matched the blob: record the diff_id the blob was verified against, then drop the marker.
    static func trust(_ cache: LayerCache, hex: String, diffIDHex: String) throws {
        try FileIO.makeDirectories(parent(cache.diffIDPath(digestHex: hex)))
        try FileIO.writeAtomically(cache.diffIDPath(digestHex: hex), Array("sha256:\(diffIDHex)\n".utf8))
        cache.remove(markerPath(cache, hex))
    }

    /// A rejected index: gone from the cache with its marker (the next mount fetches or builds anew).
    static func reject(_ cache: LayerCache, hex: String) {
        cache.remove(cache.indexPath(digestHex: hex))
        cache.remove(markerPath(cache, hex))
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}

extension String {
    func trimmingNewline() -> String {
        var s = self
        while s.last == "\n" || s.last == "\r" { s.removeLast() }
        return s
    }
}
