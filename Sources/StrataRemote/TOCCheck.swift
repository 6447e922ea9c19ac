import StrataIndex
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The background check of a layer indexed from its table of contents: once the blob is
/// complete, it is indexed again from its stream (which checks its sha256 and diff_id), and
/// the entries the TOC gave must be the ones the tar stream holds, field by field and in
/// order. Only then is the diff_id recorded as verified.
enum TOCCheck {
    /// Whether the layer's cached index came from a TOC and its stream is not checked yet.
    static func pending(_ layer: RemoteLayer, cache: LayerCache) -> Bool {
        guard cache.verifiedDiffID(digestHex: layer.digest.hex) == nil,
              let index = cache.load(digestHex: layer.digest.hex, verify: false) else { return false }
        return index.contentSpans
    }

    static func verify(_ layer: RemoteLayer, cache: LayerCache) throws {
        let hex = layer.digest.hex
        let tocIndex = try LayerIndex(path: cache.indexPath(digestHex: hex))
        let path = cache.indexPath(digestHex: hex) + ".stream-check"
        defer { unlink(path) }
        let fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, mode: 0o600)
        let diffIDHex: String
        do {
            defer { fd.close() }
            diffIDHex = try IndexBuilder.buildVerified(layer.localBlob, indexFile: fd).diffIDHex
        }
        let stream = try LayerIndex(path: path)
        if let difference = firstDifference(toc: tocIndex, stream: stream) {
            throw IndexError("layer \(layer.digest): its TOC does not match its tar stream: \(difference)")
        }
        try cache.recordVerifiedDiffID(digestHex: hex, diffIDHex: diffIDHex)
    }

    /// The first entry the TOC gives that the stream does not hold as given; nil when they agree.
    /// Times agree to the second: eStargz TOCs hold whole seconds (writers truncate or round).
    static func firstDifference(toc: LayerIndex, stream: LayerIndex) -> String? {
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
