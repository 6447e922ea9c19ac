import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The check of a layer indexed from its table of contents (eStargz, zstd:chunked) against its
/// tar stream, shared by local layers (a layout's blob) and registry ones (once the background
/// fetch completed the blob): the blob is indexed again from its stream (which checks its
/// sha256 and its diff_id against the config's, `blob.diffID`), and the entries the TOC gave
/// must be the ones the stream holds, field by field and in order. Only when all agree is the
/// diff_id recorded as verified, and later mounts skip the check.
public enum TOCStreamCheck {
    /// The check could not run: a system call failed (the scratch index could not be made or
    /// written in the cache, the blob could not be read). No verdict on the layer: it is neither
    /// failed nor recorded as verified, and its chunks are still checked as they are read.
    public struct Unavailable: Error, CustomStringConvertible, Sendable {
        public var layer: String
        public var cause: SystemError
        public var description: String { "\(layer): its stream could not be checked: \(cause)" }
    }

    /// Whether the layer's cached index came from a TOC and its stream is not checked yet.
    public static func pending(digestHex: String, cache: LayerCache) -> Bool {
        guard cache.verifiedDiffID(digestHex: digestHex) == nil,
              let index = cache.load(digestHex: digestHex, verify: false) else { return false }
        return index.contentSpans
    }

    /// Checks `blob` (whole and local: not lazy) against the index its TOC gave (`toc`'s file;
    /// nil: the cached one) and records its diff_id as verified. A lie is an `IndexError` naming
    /// the layer and the first difference (or the diff_id or digest mismatch); nothing is
    /// recorded then. A failed system call is `Unavailable`: no verdict.
    public static func verify(_ blob: LayerBlob, toc: LayerIndex? = nil, cache: LayerCache) throws {
        precondition(blob.lazy == nil, "the stream check reads a complete local blob")
        let hex = blob.digestHex
        // Opened verified: an index a mount serves unverified does not read its entries.
        let tocIndex = try LayerIndex(path: toc?.file.path ?? cache.indexPath(digestHex: hex), verify: true)
        // Named for this process: two mounts of one layer may check it at once.
        let path = cache.indexPath(digestHex: hex) + ".stream-check.\(getpid())"
        defer { unlink(path) }
        let diffIDHex: String
        do {
            let fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600)
            defer { fd.close() }
            // Throws on a digest mismatch, and on a diff_id other than the one `blob.diffID` claims.
            diffIDHex = try IndexBuilder.buildVerified(blob, indexFile: fd).diffIDHex
        } catch let error as SystemError {
            throw Unavailable(layer: blob.name, cause: error)
        }
        let stream = try LayerIndex(path: path)
        if let difference = firstDifference(toc: tocIndex, stream: stream) {
            throw IndexError("\(blob.name): its TOC does not match its tar stream: \(difference)")
        }
        try cache.recordVerifiedDiffID(digestHex: hex, diffIDHex: diffIDHex)
    }

    /// The first entry the TOC gives that the stream does not hold as given; nil when they agree.
    /// Times agree to the second: eStargz TOCs hold whole seconds (writers truncate or round).
    public static func firstDifference(toc: LayerIndex, stream: LayerIndex) -> String? {
        var a = toc.cursor(from: 0), b = stream.cursor(from: 0)
        for i in 0..<max(toc.entryCount, stream.entryCount) {
            guard i < toc.entryCount else { return "the stream holds '\(String(decoding: b.next().path, as: UTF8.self))', the TOC does not" }
            let x = a.next()
            let name = String(decoding: x.path, as: UTF8.self)
            guard i < stream.entryCount else { return "entry '\(name)' is not in the stream" }
            let y = b.next()
            guard x.path == y.path else { return "entry '\(name)' is not in the stream (it holds '\(String(decoding: y.path, as: UTF8.self))' there)" }
            guard x.kind == y.kind, x.mode == y.mode, x.uid == y.uid, x.gid == y.gid, x.size == y.size,
                  abs(x.mtimeSeconds - y.mtimeSeconds) <= 1, x.devMajor == y.devMajor, x.devMinor == y.devMinor,
                  Array(x.linkTarget) == Array(y.linkTarget), x.xattrCount == y.xattrCount else {
                return "entry '\(name)' differs from the stream's (kind, mode, owner, size, time, device, link or xattrs)"
            }
        }
        return nil
    }
}
