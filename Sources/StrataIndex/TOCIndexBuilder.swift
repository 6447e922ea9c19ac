import StrataCodec
import StrataSeekable

/// Builds a layer index from a seekable layer's table of contents instead of from its
/// decompressed stream: nothing of the blob but the TOC is read.
///
/// The index's "uncompressed stream" is then virtual: chunk j of the layer (in TOC order)
/// occupies [U_j, U_j + size_j), U_{j+1} = U_j + size_j, and each chunk has its own checkpoint
/// at its gzip member / zstd frame start. A read therefore decodes exactly one chunk and never
/// runs on into what follows it in the blob (tar padding and headers, which the index does not
/// describe). The span digests are the TOC's chunk digests: the sha256 of each chunk's
/// uncompressed bytes (`IndexFormat.spanKindContent`), checked after decoding the whole chunk
/// and before serving any of it. Spans leave gaps (the headers) but stay in order and inside
/// the blob.
///
/// The TOC is checked, not believed: chunks must tile their file, lie inside `dataEnd` (where
/// the TOC itself starts), and follow one another in the blob without overlapping. A TOC that
/// breaks a rule is refused with one line naming the layer and the entry.
public enum TOCIndexBuilder {
    /// The index bytes for `toc`, describing the blob of `blob` (`digest`: its sha256, raw).
    /// `dataEnd`: where the bytes chunks may use end (the TOC's offset; the blob size if nil).
    public static func build(_ toc: TableOfContents, blob: LayerBlob, digest: [UInt8], dataEnd: UInt64? = nil) throws -> [UInt8] {
        let compression: LayerCompression = toc.format == .estargz ? .gzip : .zstd
        let limit = min(dataEnd ?? blob.size, blob.size)
        var writer = LayerIndexWriter()
        var checkpoints: [Checkpoint] = []
        var spans: [SpanDigest] = []
        var skips: [UInt64] = []
        var virtual: UInt64 = 0
        var previousStart: UInt64 = .max, previousEnd: UInt64 = 0, previousSkip: UInt64 = 0
        for (number, e) in toc.entries.enumerated() {
            func fail(_ why: String) -> IndexError {
                IndexError("\(blob.name): TOC entry \(number) '\(PathNormalizer.abbreviated(e.path))': \(why)")
            }
            let start = virtual
            if e.kind == .regular && e.size > 0 {
                var fileOffset: UInt64 = 0
                for c in e.chunks {
                    guard c.fileOffset == fileOffset else { throw fail("chunk at file offset \(c.fileOffset) does not follow the one before (expected \(fileOffset))") }
                    guard c.size > 0, c.size <= e.size - fileOffset else { throw fail("chunk at file offset \(c.fileOffset) of \(c.size) bytes runs past the file's \(e.size)") }
                    guard c.compressedStart < c.compressedEnd, c.compressedEnd <= limit else {
                        throw fail("chunk at compressed offset \(c.compressedStart)..<\(c.compressedEnd) lies outside the blob's data (\(limit) bytes)")
                    }
                    // Small files may share a member (eStargz's innerOffset): the same range, further in.
                    let shared = c.compressedStart == previousStart && c.compressedEnd == previousEnd && c.skip > previousSkip
                    guard c.compressedStart >= previousEnd || shared else {
                        throw fail("chunk at compressed offset \(c.compressedStart) overlaps the chunk before it (which ends at \(previousEnd))")
                    }
                    guard c.digest.count == 32 else { throw fail("chunk at file offset \(c.fileOffset) has no sha256 digest") }
                    checkpoints.append(Checkpoint(compressedOffset: c.compressedStart, uncompressedOffset: virtual))
                    spans.append(SpanDigest(range: c.compressedStart..<c.compressedEnd, digest: c.digest))
                    skips.append(c.skip)
                    previousStart = c.compressedStart
                    previousEnd = c.compressedEnd
                    previousSkip = c.skip
                    virtual += c.size
                    fileOffset += c.size
                }
                guard fileOffset == e.size else { throw fail("chunks hold \(fileOffset) of the file's \(e.size) bytes") }
            } else if !e.chunks.isEmpty {
                throw fail("chunks on an entry with no data")
            }
            if let input = try convert(e, dataOffset: start, fail: fail) { writer.append(input) }
        }
        return writer.serialize(compression: compression, blobSize: blob.size, uncompressedSize: virtual, digest: digest,
                                checkpoints: checkpoints, spans: spans, contentSkips: skips)
    }

    /// An index entry for a TOC entry, as `IndexBuilder.convert` makes one for a tar entry:
    /// normalised path, whiteouts decoded, Linux's limits checked.
    static func convert(_ e: TableOfContents.Entry, dataOffset: UInt64, fail: (String) -> IndexError) throws -> IndexEntryInput? {
        let path: [UInt8]
        do { path = try PathNormalizer.normalize(e.path) } catch { throw fail("path escapes the root") }
        var input = IndexEntryInput(path: path, kind: .regular, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid, size: e.size,
                                    dataOffset: dataOffset, storedSize: e.size, mtimeSeconds: e.mtimeSeconds,
                                    mtimeNanoseconds: e.mtimeNanoseconds, devMajor: e.devMajor, devMinor: e.devMinor,
                                    xattrs: e.xattrs.filter { !$0.value.isEmpty })
        func checked(_ input: IndexEntryInput) throws -> IndexEntryInput {
            if let why = PathNormalizer.limitViolation(input) { throw fail(why) }
            return input
        }
        switch PathNormalizer.whiteout(path) {
        case .none: break
        case .aufsMeta: return nil
        case .invalid: throw fail("whiteout without a name")
        case .opaque(let dir):
            input.path = dir; input.kind = .opaque; input.size = 0; input.storedSize = 0; input.dataOffset = 0
            return try checked(input)
        case .hides(let hidden):
            input.path = hidden; input.kind = .whiteout; input.size = 0; input.storedSize = 0; input.dataOffset = 0
            return try checked(input)
        }
        switch e.kind {
        case .regular: input.kind = .regular
        case .directory: input.kind = .directory
        case .symlink: input.kind = .symlink; input.linkTarget = e.linkTarget; input.size = UInt64(e.linkTarget.count)
        case .hardlink:
            input.kind = .hardlink
            do { input.linkTarget = try PathNormalizer.normalize(e.linkTarget) } catch { throw fail("hardlink target escapes the root") }
            if input.linkTarget.isEmpty { throw fail("hardlink to the root directory") }
        case .characterDevice: input.kind = .characterDevice
        case .blockDevice: input.kind = .blockDevice
        case .fifo: input.kind = .fifo
        }
        if input.kind != .regular && input.kind != .symlink {
            input.size = 0
        }
        if input.kind != .regular { input.storedSize = 0; input.dataOffset = 0 }
        if path.isEmpty && input.kind != .directory { throw fail("the root must be a directory") }
        return try checked(input)
    }
}
