import StrataIndex
import StrataOCI
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Which cached layer indexes came from a registry artifact and are not yet confirmed.
///
///   CACHE/untrusted/sha256/<layer hex>   "sha256:<artifact hex>\n": the artifact it came from
///                                        (`LayerCache.untrustedPath`); for an index installed
///                                        without its windows section (`LazyWindows`) a second
///                                        line "windows sha256:<index blob hex> <size>\n": the
///                                        published blob its windows are fetched from, and
///                                        whose digest `confirm` checks the derived index against
///
/// An index installed from an artifact is usable at once (its span digests verify every span
/// fetched) but not trusted: anyone who can push to the repository wrote it, and a forged
/// checkpoint window changes what authentic compressed bytes decode to. It is trusted once
/// `IndexArtifacts.confirm` has re-derived it from the complete, verified blob and found the
/// same bytes. Until then the mark stays: `LayerCache.index` (local images) rebuilds such an
/// index from the blob instead of using it, and the mount confirms it after its background
/// fetch. Installing also records the diff_id the image config claims (what a mount checks
/// the complete blob against); confirming records the one the blob hashed to. Order keeps a
/// crash safe: the mark is written before the index and removed last.
enum IndexArtifactTrust {
    static func markerPath(_ cache: LayerCache, _ hex: String) -> String { cache.untrustedPath(digestHex: hex) }

    static func isUntrusted(_ cache: LayerCache, _ hex: String) -> Bool {
        FileIO.exists(markerPath(cache, hex))
    }

    /// The artifact an untrusted index came from, as its mark names it.
    static func source(_ cache: LayerCache, _ hex: String) -> String? {
        guard let first = lines(cache, hex).first, !first.isEmpty else { return nil }
        return first
    }

    /// The published index blob of an untrusted index installed without its windows section
    /// (nil: installed whole).
    struct LazyWindows: Equatable, Sendable {
        var indexBlob: Digest
        var size: Int64
        var line: String { "windows \(indexBlob) \(size)" }
    }

    static func lazyWindows(_ cache: LayerCache, _ hex: String) -> LazyWindows? {
        for line in lines(cache, hex).dropFirst() {
            let parts = line.split(separator: " ")
            guard parts.count == 3, parts[0] == "windows", let digest = try? Digest(parsing: String(parts[1])),
                  digest.algorithm == "sha256", let size = Int64(parts[2]), size > 0 else { continue }
            return LazyWindows(indexBlob: digest, size: size)
        }
        return nil
    }

    private static func lines(_ cache: LayerCache, _ hex: String) -> [String] {
        guard let bytes = try? FileIO.readAll(markerPath(cache, hex)) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { String($0).trimmingNewline() }
    }

    /// Puts an artifact's index bytes (already validated) in the cache as the layer's index,
    /// marked untrusted, with the diff_id the image claims for the layer.
    static func install(_ cache: LayerCache, hex: String, bytes: [UInt8], diffID: Digest, artifact: String) throws {
        try mark(cache, hex: hex, diffID: diffID, lines: [artifact])
        try FileIO.makeDirectories(parent(cache.indexPath(digestHex: hex)))
        try FileIO.writeAtomically(cache.indexPath(digestHex: hex), bytes)
    }

    /// Installs an index file written without its windows section (`temporary`, in the cache
    /// directory, of full size with the windows a hole): the mark records where they come from.
    static func install(_ cache: LayerCache, hex: String, sparse temporary: String, windows: LazyWindows,
                        diffID: Digest, artifact: String) throws {
        try mark(cache, hex: hex, diffID: diffID, lines: [artifact, windows.line])
        try FileIO.makeDirectories(parent(cache.indexPath(digestHex: hex)))
        try AtomicFile.publish(temporary, as: cache.indexPath(digestHex: hex), durable: true)
    }

    private static func mark(_ cache: LayerCache, hex: String, diffID: Digest, lines: [String]) throws {
        let marker = markerPath(cache, hex)
        try FileIO.makeDirectories(parent(marker))
        try FileIO.writeAtomically(marker, Array(lines.map { "\($0)\n" }.joined().utf8))
        try FileIO.makeDirectories(parent(cache.diffIDPath(digestHex: hex)))
        try FileIO.writeAtomically(cache.diffIDPath(digestHex: hex), Array("\(diffID)\n".utf8))
    }

    /// The index matched the blob: record the diff_id the blob hashed to, then drop the mark.
    static func trust(_ cache: LayerCache, hex: String, diffIDHex: String) throws {
        try FileIO.makeDirectories(parent(cache.diffIDPath(digestHex: hex)))
        try FileIO.writeAtomically(cache.diffIDPath(digestHex: hex), Array("sha256:\(diffIDHex)\n".utf8))
        cache.remove(markerPath(cache, hex))
    }

    /// A rejected index: gone from the cache with its mark and diff_id record (the next mount
    /// fetches or builds anew).
    static func reject(_ cache: LayerCache, hex: String) {
        cache.remove(cache.indexPath(digestHex: hex))
        cache.remove(cache.diffIDPath(digestHex: hex))
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
