#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataCodec
import StrataHash
import StrataOCI
import StrataSeekable
import StrataTar

/// eStargz and zstd:chunked blobs made here from tar items, cut the way those formats cut them
/// (a gzip member / zstd frame starting at every chunk of every regular file), with their TOC,
/// footer and annotations. Independent of Strata's writers, so tests can also make them lie.
public struct SeekableBlob {
    public var blob: [UInt8]
    public var annotations: [String: String]
    /// sha256 of the uncompressed stream (eStargz: including the TOC entry).
    public var diffID: Digest
    /// The uncompressed stream.
    public var tar: [UInt8]
    public var mediaType: String
}

public enum SeekableFixture {
    /// Where chunk data starts in `tar`, per regular entry: (entry, [(fileOffset, size, streamOffset)]).
    private static func cuts(_ tar: [UInt8], chunkSize: Int) throws -> (entries: [TarEntry], chunks: [[(UInt64, UInt64, Int)]], end: Int) {
        let reader = TarReader(source: MemoryTarSource(tar))
        var entries: [TarEntry] = []
        var chunks: [[(UInt64, UInt64, Int)]] = []
        var end = 0
        while let e = try reader.next() {
            entries.append(e)
            var list: [(UInt64, UInt64, Int)] = []
            if e.type == .regular {
                var at: UInt64 = 0
                while at < e.size {
                    let n = min(UInt64(chunkSize), e.size - at)
                    list.append((at, n, Int(e.dataOffset + at)))
                    at += n
                }
            }
            chunks.append(list)
            end = max(end, Int(e.dataOffset + (e.storedSize + 511) / 512 * 512))
        }
        return (entries, chunks, end)
    }

    private static func digest(_ bytes: ArraySlice<UInt8>) -> String { "sha256:" + SHA256Hasher.hex(of: Array(bytes)) }

    /// An eStargz blob: chunk members, the TOC entry `stargz.index.json` in a member of its own,
    /// the 51-byte footer. `editTOC` may change the TOC before it is written (hostile tests).
    public static func estargz(_ items: [TarItem], chunkSize: Int = 64 << 10,
                               editTOC: (inout EStargzTOC) -> Void = { _ in }) throws -> SeekableBlob {
        let full = try TarWriter.archive(items)
        let (entries, chunks, end) = try cuts(full, chunkSize: chunkSize)
        let body = Array(full[0..<end])
        var starts = [0] + chunks.flatMap { $0.map(\.2) }
        starts = starts.enumerated().filter { $0.offset == 0 || $0.element != 0 }.map(\.element)
        var blob: [UInt8] = []
        var memberAt: [Int: UInt64] = [:]
        for (k, start) in starts.enumerated() {
            let stop = k + 1 < starts.count ? starts[k + 1] : body.count
            memberAt[start] = UInt64(blob.count)
            blob += Gzip.compress(Array(body[start..<stop]))
        }
        var toc = EStargzTOC()
        for (e, list) in zip(entries, chunks) {
            var t = EStargzTOCEntry(name: e.pathString, type: TOCEntryType(e.type))
            t.modtime = RFC3339.format(seconds: e.mtimeSeconds)
            t.mode = Int64(e.mode); t.uid = Int(e.uid); t.gid = Int(e.gid)
            if !e.linkTarget.isEmpty { t.linkName = e.linkTargetString }
            if e.type == .characterDevice || e.type == .blockDevice { t.devMajor = Int(e.devMajor); t.devMinor = Int(e.devMinor) }
            t.setXattrs(e.xattrs.map { ($0.name, $0.value) })
            if e.type == .regular {
                t.size = Int64(e.size)
                if e.size > 0 { t.digest = digest(full[Int(e.dataOffset)..<Int(e.dataOffset + e.size)]) }
            }
            for (k, c) in list.enumerated() {
                var chunk = k == 0 ? t : EStargzTOCEntry(name: e.pathString, type: .chunk)
                chunk.offset = Int64(memberAt[c.2]!)
                chunk.chunkOffset = Int64(c.0)
                chunk.chunkSize = Int64(c.1)
                chunk.chunkDigest = digest(full[c.2..<(c.2 + Int(c.1))])
                toc.entries.append(chunk)
            }
            if list.isEmpty { toc.entries.append(t) }
        }
        editTOC(&toc)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array(try encoder.encode(toc))
        let tocTar = try TarWriter.archive([(TarEntry(path: Array(EStargz.tocTarName.utf8), type: .regular, mode: 0o644,
                                                      size: UInt64(json.count)), json)])
        let tocOffset = UInt64(blob.count)
        blob += Gzip.compress(tocTar)
        blob += EStargzFooter(tocOffset: tocOffset).encoded()
        let tar = body + tocTar
        return SeekableBlob(blob: blob, annotations: [EStargz.tocDigestAnnotation: "sha256:" + SHA256Hasher.hex(of: json),
                                                      EStargz.uncompressedSizeAnnotation: "\(tar.count)"],
                            diffID: Digest.sha256(of: tar), tar: tar, mediaType: MediaType.ociLayerGzip)
    }

    /// A zstd:chunked blob: a frame per chunk (headers in the frames before), the TOC in a
    /// skippable frame, the footer. `annotatePosition` false leaves the position to the footer.
    public static func zstdChunked(_ items: [TarItem], chunkSize: Int = 64 << 10, dialect: ZstdChunked.Dialect = .legacy,
                                   annotatePosition: Bool = true,
                                   editTOC: (inout ZstdChunkedTOC) -> Void = { _ in }) throws -> SeekableBlob {
        let full = try TarWriter.archive(items)
        let (entries, chunks, _) = try cuts(full, chunkSize: chunkSize)
        var starts = [0] + chunks.flatMap { $0.map(\.2) }
        starts = starts.enumerated().filter { $0.offset == 0 || $0.element != 0 }.map(\.element)
        var blob: [UInt8] = []
        var frame: [Int: Range<UInt64>] = [:]
        for (k, start) in starts.enumerated() {
            let stop = k + 1 < starts.count ? starts[k + 1] : full.count
            let at = UInt64(blob.count)
            blob += Zstd.compress(Array(full[start..<stop]))
            frame[start] = at..<UInt64(blob.count)
        }
        var toc = ZstdChunkedTOC()
        for (e, list) in zip(entries, chunks) {
            var t = ZstdChunkedTOCEntry(type: TOCEntryType(e.type), name: e.pathString)
            t.modtime = RFC3339.format(seconds: e.mtimeSeconds)
            t.mode = Int64(e.mode); t.uid = Int(e.uid); t.gid = Int(e.gid)
            if !e.linkTarget.isEmpty { t.linkName = e.linkTargetString }
            if e.type == .characterDevice || e.type == .blockDevice { t.devMajor = Int64(e.devMajor); t.devMinor = Int64(e.devMinor) }
            t.setXattrs(e.xattrs.map { ($0.name, $0.value) })
            if e.type == .regular {
                t.size = Int64(e.size)
                if e.size > 0 { t.digest = digest(full[Int(e.dataOffset)..<Int(e.dataOffset + e.size)]) }
            }
            for (k, c) in list.enumerated() {
                var chunk = k == 0 ? t : ZstdChunkedTOCEntry(type: .chunk, name: e.pathString)
                let r = frame[c.2]!
                chunk.offset = Int64(r.lowerBound)
                chunk.endOffset = Int64(r.upperBound)
                if list.count > 1 {
                    chunk.chunkOffset = Int64(c.0)
                    chunk.chunkSize = Int64(c.1)
                    chunk.chunkDigest = digest(full[c.2..<(c.2 + Int(c.1))])
                }
                toc.entries.append(chunk)
            }
            if list.isEmpty { toc.entries.append(t) }
        }
        editTOC(&toc)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = Array(try encoder.encode(toc))
        let compressed = Zstd.compress(json)
        let position = ZstdChunkedPosition(offset: UInt64(blob.count + ZstdChunked.skippableFrameHeaderSize),
                                           length: UInt64(compressed.count), uncompressedLength: UInt64(json.count))
        blob += ZstdChunked.skippableFrame(compressed)
        blob += ZstdChunkedFooter(dialect: dialect, toc: position).encodedFrame()
        var annotations = [dialect.manifestChecksumKey: "sha256:" + SHA256Hasher.hex(of: compressed)]
        if annotatePosition { annotations[dialect.manifestPositionKey] = position.annotation }
        return SeekableBlob(blob: blob, annotations: annotations, diffID: Digest.sha256(of: full), tar: full,
                            mediaType: MediaType.ociLayerZstd)
    }
}

extension ImageBuilder {
    /// Adds a seekable layer with its annotations (and its real diff_id).
    @discardableResult
    public func addSeekableLayer(_ layer: SeekableBlob) throws -> Layer {
        var added = try addRawLayer(blob: layer.blob, mediaType: layer.mediaType, diffID: layer.diffID)
        added.descriptor.annotations = layer.annotations
        layers[layers.count - 1] = added
        return added
    }
}
