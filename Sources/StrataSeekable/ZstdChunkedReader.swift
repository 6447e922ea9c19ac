#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataCodec
import StrataHash

/// Reads a zstd:chunked layer's table of contents: where it is comes from the layer's
/// `manifest-position` annotation (or, without it, from the footer at the blob's end); its
/// compressed bytes must hash to the `manifest-checksum` annotation (either dialect).
public enum ZstdChunkedReader {
    /// The checksum annotation and, if annotated, the TOC position, of whichever dialect the
    /// layer carries (the current one first); nil when the layer has no checksum annotation.
    public static func annotations(_ annotations: [String: String]) -> (checksum: String, position: ZstdChunkedPosition?)? {
        for dialect in [ZstdChunked.Dialect.current, .legacy] {
            guard let checksum = annotations[dialect.manifestChecksumKey] else { continue }
            return (checksum, annotations[dialect.manifestPositionKey].flatMap { ZstdChunkedPosition(annotation: $0) })
        }
        return nil
    }

    /// The blob range to read for the footer (when the position is not annotated).
    public static func footerRange(blobSize: UInt64) -> Range<UInt64> {
        (blobSize - min(blobSize, UInt64(ZstdChunked.maxFooterFrameSize)))..<blobSize
    }

    /// The TOC position from the footer bytes.
    public static func position(tail: [UInt8]) throws -> ZstdChunkedPosition {
        do { return try ZstdChunkedFooter.decode(tail: tail).toc } catch { throw TOCError("\(error)") }
    }

    /// The compressed TOC's range in the blob, checked to lie inside it after a skippable frame header.
    public static func tocRange(_ position: ZstdChunkedPosition, blobSize: UInt64) throws -> Range<UInt64> {
        guard position.type ?? ZstdChunked.manifestTypeCRFS == ZstdChunked.manifestTypeCRFS else {
            throw TOCError("zstd:chunked manifest type \(position.type ?? 0) is not 1")
        }
        guard position.offset >= UInt64(ZstdChunked.skippableFrameHeaderSize), position.length > 0,
              position.length <= blobSize, position.offset <= blobSize - position.length, position.uncompressedLength <= UInt64(TableOfContents.maxJSONSize) else {
            throw TOCError("zstd:chunked TOC position \(position.annotation) lies outside the blob (\(blobSize) bytes)")
        }
        return position.offset..<(position.offset + position.length)
    }

    /// The TOC from its compressed bytes, checked against `checksum` ("sha256:HEX").
    public static func read(compressed: [UInt8], position: ZstdChunkedPosition, checksum: String) throws -> TableOfContents {
        let expected = try hexDigest(checksum, what: "manifest-checksum annotation")
        let digest = SHA256Hasher.hash(compressed)
        guard digest == expected else {
            throw TOCError("TOC digest mismatch: the annotation says \(checksum), the TOC hashes to sha256:\(SHA256Hasher.hex(digest))")
        }
        let json: [UInt8]
        do { json = try Zstd.decompress(compressed, limit: Int(position.uncompressedLength)) } catch { throw TOCError("TOC at offset \(position.offset): \(error)") }
        guard json.count == Int(position.uncompressedLength) else {
            throw TOCError("TOC at offset \(position.offset) holds \(json.count) bytes, its position says \(position.uncompressedLength)")
        }
        let parsed: ZstdChunkedTOC
        do { parsed = try JSONDecoder().decode(ZstdChunkedTOC.self, from: Data(json)) } catch { throw TOCError("TOC JSON: \(error)") }
        return try convert(parsed, dataEnd: position.offset - UInt64(ZstdChunked.skippableFrameHeaderSize))
    }

    static func convert(_ parsed: ZstdChunkedTOC, dataEnd: UInt64) throws -> TableOfContents {
        let ends = ChunkEnds(parsed.entries, dataEnd: dataEnd)
        func end(after start: UInt64) -> UInt64 { ends.end(after: start) }
        var entries: [TableOfContents.Entry] = []
        for (number, e) in parsed.entries.enumerated() {
            func fail(_ why: String) -> TOCError { TOCError("TOC entry \(number) '\(e.name)': \(why)") }
            guard let type = e.entryType else { throw fail("unknown type '\(e.type)'") }
            func chunk(fileSize: UInt64, wholeFileDigest: String?) throws -> TableOfContents.Chunk {
                if e.chunkType == ZstdChunkedTOCEntry.chunkTypeZeros { throw TOCError("TOC entry \(number) '\(e.name)': holes (chunkType zeros) are not supported", unsupported: true) }
                guard let offset = e.offset, offset >= 0 else { throw fail("chunk without an offset") }
                let fileOffset = UInt64(max(e.chunkOffset ?? 0, 0))
                guard fileOffset < fileSize else { throw fail("chunk offset \(fileOffset) past the file's \(fileSize) bytes") }
                let size = (e.chunkSize ?? 0) > 0 ? UInt64(e.chunkSize!) : fileSize - fileOffset
                // A file of one chunk has only its whole-file digest, which is the chunk's.
                guard let digest = e.chunkDigest ?? (size == fileSize ? wholeFileDigest : nil) else { throw fail("chunk without a digest") }
                let start = UInt64(offset)
                // A file's `reg` entry may give the end of all its chunks' frames: a chunk ends
                // at the next chunk's start at the latest.
                let next = end(after: start)
                let stop = (e.endOffset ?? 0) > offset ? min(UInt64(e.endOffset!), next) : next
                return TableOfContents.Chunk(fileOffset: fileOffset, size: size, compressedStart: start, compressedEnd: stop,
                                             digest: try hexDigest(digest, what: "digest of '\(e.name)'"))
            }
            if type == .chunk {
                guard let last = entries.indices.last, entries[last].kind == .regular, entries[last].path == Array(e.name.utf8) else {
                    throw fail("chunk does not follow its file")
                }
                entries[last].chunks.append(try chunk(fileSize: entries[last].size, wholeFileDigest: nil))
                continue
            }
            let kind = TableOfContents.Kind(type)
            var entry = try TableOfContents.Entry(fields: e, kind: kind, fail: fail)
            if kind == .regular && entry.size > 0 { entry.chunks = [try chunk(fileSize: entry.size, wholeFileDigest: e.digest)] }
            entries.append(entry)
        }
        return TableOfContents(format: .zstdChunked, entries: entries)
    }
}
