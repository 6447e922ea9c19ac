#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataCodec
import StrataHash
import StrataSystem
import StrataTar

/// Tar stream in, zstd:chunked blob out, laid out as containers/storage's compressor does:
/// headers (and the previous file's padding) share a frame; each regular file's data starts a
/// new frame and ends one, so [offset, endOffset) decodes to exactly the file; a file larger
/// than `chunkSize` gets one frame per chunk, listed as `chunk` entries with their sizes and
/// digests (fixed-size chunks: the format leaves the cutting to the writer). After the tar
/// (end-of-archive included) come a skippable frame with the zstd-compressed TOC JSON and the
/// footer frame. No tar-split frame is written (only needed to rebuild a bit-identical tar
/// without the blob; c/storage falls back to an ordinary pull without it).
///
/// `dialect` `.current` (default) writes the 64-byte footer and the
/// `io.github.containers.zstd-chunked.*` annotations, plus the legacy `io.containers.…` ones
/// so Debian 12's containers/storage 1.43 finds the TOC too (it reads the annotations, never
/// this footer, when they are present). `.legacy` writes only the old names and the 40-byte footer.
public struct ZstdChunkedWriter: Sendable {
    public var chunkSize: Int
    public var level: Int32
    public var dialect: ZstdChunked.Dialect

    public init(chunkSize: Int = 4 << 20, level: Int32 = 3, dialect: ZstdChunked.Dialect = .current) {
        self.chunkSize = max(chunkSize, 1)
        self.level = level
        self.dialect = dialect
    }

    /// With `prioritized`, the files it names come first (`PrioritizedTarInput`, no landmark
    /// entry) and the annotation `ZstdChunked.prefetchEndAnnotation` says where their frames end.
    public func write(tar source: TarSource, to file: FileDescriptor, prioritized: Prioritization? = nil) throws -> SeekableLayerResult {
        let reordered = try prioritized.map { p in
            var p = p
            p.landmark = false
            return try PrioritizedTarInput(source: source, prioritization: p)
        }
        let input: any SeekableEntryInput = reordered ?? SeekableTarInput(source: source)
        var prefetchEnd: UInt64?
        let out = try BlobOutput(compression: .zstd, file: file, level: level)
        var toc = ZstdChunkedTOC()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)

        while let entry = try input.next() {
            try out.write(try TarWriter.header(for: entry))
            var ent = ZstdChunkedTOCEntry(type: TOCEntryType(entry.type), name: entry.pathString)
            ent.mode = entry.mode == 0 ? nil : Int64(entry.mode)
            ent.uid = entry.uid == 0 ? nil : Int(entry.uid)
            ent.gid = entry.gid == 0 ? nil : Int(entry.gid)
            ent.modtime = RFC3339.format(seconds: entry.mtimeSeconds, nanoseconds: entry.mtimeNanoseconds)
            ent.setXattrs(entry.xattrs.map { ($0.name, $0.value) })
            switch entry.type {
            case .hardlink, .symlink:
                ent.linkName = entry.linkTargetString
            case .characterDevice, .blockDevice:
                ent.devMajor = Int64(entry.devMajor); ent.devMinor = Int64(entry.devMinor)
            case .regular:
                ent.size = entry.size == 0 ? nil : Int64(entry.size)
            case .directory, .fifo:
                break
            }
            guard entry.type == .regular, entry.size > 0 else {
                toc.entries.append(ent)
                continue
            }
            let fileHasher = SHA256Hasher()
            var written: UInt64 = 0
            var chunks: [ZstdChunkedTOCEntry] = []
            while written < entry.size {
                let offset = try out.endUnit()
                let size = min(UInt64(chunkSize), entry.size - written)
                var chunk = chunks.isEmpty ? ent : ZstdChunkedTOCEntry(type: .chunk, name: ent.name)
                chunk.offset = Int64(offset)
                chunk.chunkOffset = written == 0 ? nil : Int64(written)
                let chunkDigest = try out.copy(size, of: entry.pathString, from: input, buffer: &buffer, fileHasher: fileHasher)
                chunk.chunkSize = Int64(size)
                chunk.chunkDigest = chunkDigest
                chunks.append(chunk)
                written += size
            }
            let end = try out.endUnit()
            chunks[0].digest = "sha256:" + fileHasher.finalizeHex()
            chunks[0].endOffset = Int64(end)
            if input.inPrioritizedPart { prefetchEnd = end }
            // As containers/storage: chunk fields only when there are several chunks.
            if chunks.count == 1 { chunks[0].chunkSize = nil; chunks[0].chunkDigest = nil }
            toc.entries += chunks
            try out.writeZeros(TarWriter.padding(for: entry.size))
        }
        try out.write(TarWriter.endOfArchive)
        try out.finishCompression()

        let json = try EStargzWriter.encodeJSON(toc, what: "zstd:chunked TOC")
        let compressed = try json.withUnsafeBytes { raw in
            let encoder = try ZstdFrameEncoder(level: level)
            return Array(try encoder.encode(raw))
        }
        let tocStart = try out.position + UInt64(ZstdChunked.skippableFrameHeaderSize)
        let position = ZstdChunkedPosition(offset: tocStart, length: UInt64(compressed.count),
                                           uncompressedLength: UInt64(json.count))
        try out.writeRaw(ZstdChunked.skippableFrame(compressed))
        try out.writeRaw(ZstdChunkedFooter(dialect: dialect, toc: position).encodedFrame())

        let checksum = "sha256:" + SHA256Hasher.hex(of: compressed)
        var annotations: [String: String] = [:]
        for d in dialect == .current ? [ZstdChunked.Dialect.current, .legacy] : [.legacy] {
            annotations[d.manifestChecksumKey] = checksum
            annotations[d.manifestPositionKey] = position.annotation
        }
        if let prefetchEnd { annotations[ZstdChunked.prefetchEndAnnotation] = String(prefetchEnd) }
        return SeekableLayerResult(
            format: .zstdChunked, blobSHA256Hex: out.blobHasher.finalizeHex(), blobSize: try out.position,
            diffIDHex: out.diffHasher.finalizeHex(), uncompressedSize: out.uncompressedSize, tocDigest: checksum,
            annotations: annotations, tocEntries: toc.entries.count, prioritization: reordered?.result)
    }
}
