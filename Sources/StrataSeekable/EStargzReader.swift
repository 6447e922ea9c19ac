#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataCodec
import StrataHash
import StrataTar

/// Reads an eStargz layer's table of contents: the footer names the TOC member's offset; the
/// member holds the tar entry `stargz.index.json` whose JSON must hash to the layer's
/// `containerd.io/snapshot/stargz/toc.digest` annotation. Two small reads of the blob.
public enum EStargzReader {
    /// The blob range to read first: its last bytes, where either footer is.
    public static func footerRange(blobSize: UInt64) -> Range<UInt64> {
        (blobSize - min(blobSize, UInt64(EStargzFooter.maxSize)))..<blobSize
    }

    /// The TOC member's range, from the footer bytes (`tail`: the `footerRange`).
    public static func tocRange(tail: [UInt8], blobSize: UInt64) throws -> Range<UInt64> {
        let footer: EStargzFooter
        do { footer = try EStargzFooter.decode(tail: tail) } catch { throw TOCError("\(error)") }
        let end = blobSize - UInt64(footer.encodedSize)
        guard footer.tocOffset < end else { throw TOCError("eStargz footer points at offset \(footer.tocOffset), past the blob's data (\(end) bytes)") }
        return footer.tocOffset..<end
    }

    /// The TOC of a layer from its TOC member (compressed bytes `member` at `range`), checked
    /// against `tocDigest` ("sha256:HEX", the annotation). Every chunk must carry a digest.
    public static func read(member: [UInt8], range: Range<UInt64>, tocDigest: String) throws -> TableOfContents {
        let expected = try hexDigest(tocDigest, what: "TOC digest annotation")
        let tar: [UInt8]
        do { tar = try Gzip.decompress(member, limit: TableOfContents.maxJSONSize) } catch { throw TOCError("TOC member at offset \(range.lowerBound): \(error)") }
        let reader = TarReader(source: MemoryTarSource(tar))
        let tocEntry: TarEntry
        do {
            guard let e = try reader.next(), e.pathString == EStargz.tocTarName, e.type == .regular,
                  e.dataOffset + e.size <= UInt64(tar.count) else {
                throw TOCError("TOC member at offset \(range.lowerBound) does not hold \(EStargz.tocTarName)")
            }
            tocEntry = e
        } catch let error as TOCError { throw error } catch {
            throw TOCError("TOC member at offset \(range.lowerBound): \(error)")
        }
        let json = Array(tar[Int(tocEntry.dataOffset)..<Int(tocEntry.dataOffset + tocEntry.size)])
        let digest = SHA256Hasher.hash(json)
        guard digest == expected else {
            throw TOCError("TOC digest mismatch: the annotation says \(tocDigest), the TOC hashes to sha256:\(SHA256Hasher.hex(digest))")
        }
        let parsed: EStargzTOC
        do { parsed = try JSONDecoder().decode(EStargzTOC.self, from: Data(json)) } catch {
            throw TOCError("TOC JSON: \(error)")
        }
        var toc = try convert(parsed, dataEnd: range.lowerBound)
        // The TOC's own tar entry is part of the layer's tree (umoci unpacks it too): its bytes
        // follow its header in the TOC member, checked by the digest just computed.
        toc.entries.append(TableOfContents.Entry(
            path: tocEntry.path, kind: .regular, mode: tocEntry.mode, uid: tocEntry.uid, gid: tocEntry.gid, size: tocEntry.size,
            mtimeSeconds: tocEntry.mtimeSeconds, mtimeNanoseconds: tocEntry.mtimeNanoseconds,
            xattrs: tocEntry.xattrs.map { (Array($0.name.utf8), $0.value) },
            chunks: tocEntry.size == 0 ? [] : [TableOfContents.Chunk(fileOffset: 0, size: tocEntry.size, compressedStart: range.lowerBound,
                                                                     compressedEnd: range.upperBound, digest: digest,
                                                                     skip: tocEntry.dataOffset)]))
        return toc
    }

    /// The neutral model of a parsed TOC (`dataEnd`: the TOC member's offset, where the last
    /// chunk's member ends).
    static func convert(_ parsed: EStargzTOC, dataEnd: UInt64) throws -> TableOfContents {
        let ends = ChunkEnds(parsed.entries, dataEnd: dataEnd)
        func end(after start: UInt64) -> UInt64 { ends.end(after: start) }
        var entries: [TableOfContents.Entry] = []
        var landmark: UInt64?
        for (number, e) in parsed.entries.enumerated() {
            func fail(_ why: String) -> TOCError { TOCError("TOC entry \(number) '\(e.name)': \(why)") }
            guard let type = e.entryType else { throw fail("unknown type '\(e.type)'") }
            func chunk(fileSize: UInt64) throws -> TableOfContents.Chunk {
                guard let offset = e.offset, offset >= 0 else { throw fail("chunk without an offset") }
                let fileOffset = UInt64(max(e.chunkOffset ?? 0, 0))
                guard fileOffset < fileSize else { throw fail("chunk offset \(fileOffset) past the file's \(fileSize) bytes") }
                let size = (e.chunkSize ?? 0) > 0 ? UInt64(e.chunkSize!) : fileSize - fileOffset
                guard let digest = e.chunkDigest else { throw fail("chunk without a chunkDigest") }
                let start = UInt64(offset)
                return TableOfContents.Chunk(fileOffset: fileOffset, size: size, compressedStart: start, compressedEnd: end(after: start),
                                             digest: try hexDigest(digest, what: "chunkDigest of '\(e.name)'"),
                                             skip: UInt64(max(e.innerOffset ?? 0, 0)))
            }
            if type == .chunk {
                guard let last = entries.indices.last, entries[last].kind == .regular, entries[last].path == Array(e.name.utf8) else {
                    throw fail("chunk does not follow its file")
                }
                entries[last].chunks.append(try chunk(fileSize: entries[last].size))
                continue
            }
            let kind = TableOfContents.Kind(type)
            var entry = try TableOfContents.Entry(fields: e, kind: kind, fail: fail)
            if kind == .regular && entry.size > 0 { entry.chunks = [try chunk(fileSize: entry.size)] }
            if kind == .regular && e.name.split(separator: "/").last.map(String.init) == EStargz.prefetchLandmark && e.name.split(separator: "/").count == 1,
               let offset = e.offset {
                landmark = UInt64(max(offset, 0))
            }
            entries.append(entry)
        }
        // Everything before the landmark's member is what the image's builder marked as read at start.
        return TableOfContents(format: .estargz, entries: entries, prefetch: landmark.map { $0 > 0 ? [0..<$0] : [] } ?? [])
    }
}

/// "sha256:HEX" as 32 raw bytes.
func hexDigest(_ text: String, what: String) throws -> [UInt8] {
    guard text.hasPrefix("sha256:") else { throw TOCError("\(what) '\(text)' is not a sha256 digest") }
    let hex = Array(text.utf8.dropFirst(7))
    guard hex.count == 64 else { throw TOCError("\(what) '\(text)' is not a sha256 digest") }
    var out: [UInt8] = []
    out.reserveCapacity(32)
    func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: c - 0x30
        case 0x61...0x66: c - 0x61 + 10
        default: nil
        }
    }
    var i = 0
    while i < 64 {
        guard let hi = value(hex[i]), let lo = value(hex[i + 1]) else { throw TOCError("\(what) '\(text)' is not a sha256 digest") }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
