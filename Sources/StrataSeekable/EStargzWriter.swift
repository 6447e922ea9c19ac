#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataCodec
import StrataHash
import StrataSystem
import StrataTar

/// Tar stream in, eStargz blob out, laid out as stargz-snapshotter's `estargz.Writer` does:
/// headers go into the current gzip member; each chunk of a regular file's data (files are cut
/// every `chunkSize` bytes) starts a new member, whose offset the TOC records with the chunk's
/// digest; the tar padding and the next headers follow in that member. The TOC is the last tar
/// entry, `stargz.index.json`, alone in its member with the end-of-archive blocks, and the
/// 51-byte footer ends the blob. The diff_id covers that TOC entry too (the uncompressed stream
/// is a tar holding it). Headers are re-written as PAX by `TarWriter`, so it may differ from the
/// source's diff_id even without the TOC.
public struct EStargzWriter: Sendable {
    public var chunkSize: Int
    /// zlib level; stargz uses 9, 6 (zlib's default) costs a third of the time for ~1 % more bytes.
    public var level: Int32

    public init(chunkSize: Int = EStargz.defaultChunkSize, level: Int32 = 6) {
        self.chunkSize = max(chunkSize, 1)
        self.level = level
    }

    /// Reads the whole of `source` and writes the blob at `file`'s current position. With
    /// `prioritized`, the files it names come first, then the `.prefetch.landmark` entry
    /// (`PrioritizedTarInput`; `.no.prefetch.landmark` first when the layer holds none of them).
    public func write(tar source: TarSource, to file: FileDescriptor, prioritized: Prioritization? = nil) throws -> SeekableLayerResult {
        let reordered = try prioritized.map { try PrioritizedTarInput(source: source, prioritization: $0) }
        let input: any SeekableEntryInput = reordered ?? SeekableTarInput(source: source)
        let out = try BlobOutput(compression: .gzip, file: file, level: level)
        var toc = EStargzTOC()
        var lastUserName: [Int: String] = [:], lastGroupName: [Int: String] = [:]
        var buffer = [UInt8](repeating: 0, count: 1 << 20)

        while let entry = try input.next() {
            // A layer converted twice: the old TOC is dropped, as stargz does.
            if normalizedName(entry.path) == EStargz.tocTarName { continue }
            try out.write(try TarWriter.header(for: entry))
            var ent = EStargzTOCEntry(name: entry.pathString, type: TOCEntryType(entry.type))
            ent.mode = entry.mode == 0 ? nil : Int64(entry.mode)
            ent.uid = entry.uid == 0 ? nil : Int(entry.uid)
            ent.gid = entry.gid == 0 ? nil : Int(entry.gid)
            // Names only on the first entry with a given id after a change, like stargz.
            if !entry.uname.isEmpty, lastUserName[Int(entry.uid)] != entry.uname {
                ent.userName = entry.uname; lastUserName[Int(entry.uid)] = entry.uname
            }
            if !entry.gname.isEmpty, lastGroupName[Int(entry.gid)] != entry.gname {
                ent.groupName = entry.gname; lastGroupName[Int(entry.gid)] = entry.gname
            }
            // Fractions kept (RFC 3339 allows them, Go's parser reads them): the TOC then says what
            // the tar header says, and a mount indexed from it shows what `umoci unpack` does.
            ent.modtime = entry.mtimeSeconds == 0 && entry.mtimeNanoseconds == 0 ? nil
                : RFC3339.format(seconds: entry.mtimeSeconds, nanoseconds: entry.mtimeNanoseconds)
            ent.setXattrs(entry.xattrs.map { ($0.name, $0.value) })
            switch entry.type {
            case .hardlink, .symlink:
                ent.linkName = entry.linkTargetString
            case .characterDevice, .blockDevice:
                ent.devMajor = Int(entry.devMajor); ent.devMinor = Int(entry.devMinor)
            case .regular:
                ent.size = entry.size == 0 ? nil : Int64(entry.size)
            case .directory, .fifo:
                break
            }
            guard entry.type == .regular, entry.size > 0 else {
                if entry.type == .regular { ent.digest = "sha256:" + SHA256Hasher().finalizeHex() }
                toc.entries.append(ent)
                continue
            }
            let fileHasher = SHA256Hasher()
            var written: UInt64 = 0
            var chunkEntries: [EStargzTOCEntry] = []
            while written < entry.size {
                let offset = try out.endUnit()
                let remain = entry.size - written
                let size = min(UInt64(chunkSize), remain)
                var chunk = chunkEntries.isEmpty ? ent : EStargzTOCEntry(name: ent.name, type: .chunk)
                // stargz leaves chunkSize out (0: "to the end of the file") on a last, short chunk.
                chunk.chunkSize = remain >= UInt64(chunkSize) ? Int64(chunkSize) : nil
                chunk.offset = Int64(offset)
                chunk.chunkOffset = written == 0 ? nil : Int64(written)
                let chunkDigest = try out.copy(size, of: entry.pathString, from: input, buffer: &buffer, fileHasher: fileHasher)
                chunk.chunkDigest = chunkDigest
                chunkEntries.append(chunk)
                written += size
            }
            chunkEntries[0].digest = "sha256:" + fileHasher.finalizeHex()
            toc.entries += chunkEntries
            try out.writeZeros(TarWriter.padding(for: entry.size))
        }

        // The TOC: its own member, then the footer pointing at it.
        let tocOffset = try out.endUnit()
        let json = try Self.encodeJSON(toc, what: "eStargz TOC")
        let tocDigest = "sha256:" + SHA256Hasher.hex(of: json)
        var header = TarEntry(path: Array(EStargz.tocTarName.utf8), type: .regular, mode: 0o644, size: UInt64(json.count))
        header.uname = ""; header.gname = ""
        try out.write(try TarWriter.header(for: header))
        try out.write(json)
        try out.writeZeros(TarWriter.padding(for: UInt64(json.count)))
        try out.write(TarWriter.endOfArchive)
        try out.finishCompression()
        try out.writeRaw(EStargzFooter(tocOffset: tocOffset).encoded())

        let uncompressedSize = out.uncompressedSize
        return SeekableLayerResult(
            format: .estargz, blobSHA256Hex: out.blobHasher.finalizeHex(), blobSize: try out.position,
            diffIDHex: out.diffHasher.finalizeHex(), uncompressedSize: uncompressedSize, tocDigest: tocDigest,
            annotations: [EStargz.tocDigestAnnotation: tocDigest,
                          EStargz.uncompressedSizeAnnotation: String(uncompressedSize)],
            tocEntries: toc.entries.count, prioritization: reordered?.result)
    }

    /// Compact, keys sorted, "/" unescaped: the same TOC always gives the same digest.
    static func encodeJSON<T: Encodable>(_ value: T, what: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return Array(try encoder.encode(value)) } catch {
            throw SeekableError("cannot encode the \(what): \(error)")
        }
    }
}

/// A tar name as readers compare it: "./a/b/" and "a/b" are the same entry.
func normalizedName(_ path: [UInt8]) -> String {
    var parts: [Substring] = []
    for part in String(decoding: path, as: UTF8.self).split(separator: "/") where part != "." {
        parts.append(part)
    }
    return parts.joined(separator: "/")
}
