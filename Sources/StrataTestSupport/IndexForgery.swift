import StrataIndex
import StrataSystem

/// What an attacker who can push to a repository publishes: a layer index rewritten with the
/// writer, so every checksum and span digest is consistent and it parses, but with one
/// checkpoint window altered (which changes what the authentic compressed bytes decode to).
public enum IndexForgery {
    /// The index written again from its records; with `alteringWindowOf` (a checkpoint number)
    /// that checkpoint's window has one byte flipped. nil: an exact copy.
    public static func rewrite(_ index: LayerIndex, alteringWindowOf target: Int?) throws -> [UInt8] {
        guard index.copySize == 0 else { throw HarnessError("index \(index.file.path): has a re-encoded copy") }
        var writer = LayerIndexWriter()
        for i in 0..<index.entryCount {
            let e = index.entry(i)
            let xattrs = (0..<Int(e.xattrCount)).map { k -> (name: [UInt8], value: [UInt8]) in
                let x = index.xattr(Int(e.xattrFirst) + k)
                return (Array(x.name), Array(x.value))
            }
            let sparse = e.isSparse ? (0..<Int(e.sparseCount)).map { index.sparseSegment(Int(e.sparseFirst) + $0) } : nil
            writer.append(IndexEntryInput(path: Array(e.path), linkTarget: Array(e.linkTarget), kind: e.kind, mode: e.mode,
                                          uid: e.uid, gid: e.gid, size: e.size, dataOffset: e.dataOffset, storedSize: e.storedSize,
                                          mtimeSeconds: e.mtimeSeconds, mtimeNanoseconds: e.mtimeNanoseconds,
                                          devMajor: e.devMajor, devMinor: e.devMinor, xattrs: xattrs, sparse: sparse))
        }
        var checkpoints = try (0..<index.checkpointCount).map { try index.checkpoint($0) }
        if let target {
            // A byte the data after the checkpoint reads: windows are sparse, a zero byte may be unread.
            let window = checkpoints[target].window
            checkpoints[target].window[window.lastIndex(where: { $0 != 0 }) ?? window.count / 2] ^= 0x5a
        }
        let spans = (0..<index.spanCount).map { SpanDigest(range: index.spanRange($0), digest: index.spanDigest($0)) }
        var digest: [UInt8] = []
        var hex = Substring(index.digestHex)
        while !hex.isEmpty {
            digest.append(UInt8(hex.prefix(2), radix: 16) ?? 0)
            hex = hex.dropFirst(2)
        }
        return writer.serialize(compression: index.compression, blobSize: index.blobSize, uncompressedSize: index.uncompressedSize,
                                digest: digest, checkpoints: checkpoints, spans: spans, checkpointSpacing: index.checkpointSpacing)
    }

    /// A checkpoint after the first whose window decoding from it reads (a byte of it is kept).
    public static func checkpointWithWindow(_ index: LayerIndex) throws -> Int {
        for i in 1..<max(index.checkpointCount, 1) where try index.checkpoint(i).window.contains(where: { $0 != 0 }) { return i }
        throw HarnessError("index \(index.file.path): no checkpoint with a window (\(index.checkpointCount) checkpoints)")
    }

    /// Forges the index file at `path` in place (one window altered, as `rewrite`); returns
    /// the honest bytes it replaced.
    @discardableResult
    public static func forge(path: String) throws -> [UInt8] {
        let honest = try FileIO.readAll(path)
        let index = try LayerIndex(path: path)
        let forged = try rewrite(index, alteringWindowOf: try checkpointWithWindow(index))
        try FileIO.writeAtomically(path, forged)
        return honest
    }
}
