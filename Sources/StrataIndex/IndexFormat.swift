/// The on-disk layout of a layer index, written down here once: the writer
/// (`LayerIndexWriter`) stores and the reader (`LayerIndex`) loads every field through these
/// constants, and `CacheFileFormat` checks the header and the sections' bounds. Little-endian,
/// fixed-size records, so a mount maps the file and reads records in place instead of parsing it.
///
///   header (256 bytes) | entries (`EntryCodec`: varint records, directory table, restart
///   table) | xattrs (16 each) | sparse segments (16 each) | checkpoints (40 each) | strings
///   | windows (each checkpoint window, deflated) | span digests (48 each)
///
/// A window keeps only the bytes decoding from its checkpoint reads, the others zero
/// (`SparseWindow`, version 7): that is what the index's own build stores, what a derived
/// index is compared with, and what a window made from the span before must become.
///
/// Every section is checked when it is first read, not the whole file at open (a warm mount
/// reads only the header and the checkpoints): the header's checksum covers the header (its own
/// field read as zero), which holds one checksum per record section, and each checkpoint record
/// holds the checksum of its stored window, checked whenever the window is read. A mismatch is
/// `IndexDamage`: the index is rebuilt from the blob. Nothing in the file depends on where the
/// blob lives, and the same layer always gives the same bytes.
///
/// Span digests (version 3): the sha256 of each compressed span of the blob, so that every
/// span decoded (from a local blob or one fetched from a registry) is verified before its
/// bytes are served. gzip and zstd: one span per checkpoint the decoder recorded (copy frames
/// replacing some in the checkpoints section do not change this list), covering the blob bytes
/// [start, end): span 0 starts at 0 (so the gzip header is covered); span j > 0 starts at its
/// checkpoint's `compressedOffset`, or one byte before it when its `bits` is non-zero (that byte
/// holds the checkpoint's first bits); a span ends where the next starts, plus one byte when the
/// next starts one byte early (consecutive spans then share that byte); the last ends at the
/// blob's end. So the bytes decoding from checkpoint j reads to produce its span lie in span j.
/// Plain tar: one span per 1 MiB piece of the blob (`plainPieceSize`), the last one shorter.
/// (A zstd layer's re-encoded copy needs none: each of its frames carries a checksum, checked
/// when decoded.) The section has its own checksum in the header, like the others.
///
/// Content span digests (version 5, header `spanKind` = `spanKindContent`): an index built
/// from a seekable layer's table of contents (`TOCIndexBuilder`). Its stream is virtual: one
/// checkpoint per chunk, at the chunk's gzip member / zstd frame start (`bits` 0, no window;
/// `windowOffset` holds how many decoded bytes of the member precede the chunk's own), and one
/// span per checkpoint whose digest is the sha256 of the chunk's *uncompressed* bytes, its range
/// the compressed bytes [member start, end) needed to decode it. Spans then stay in order and
/// inside the blob but need not touch (tar headers lie between them).
///
/// Moving a field changes the bytes of every index: `version` must change with it
/// (IndexFormatTests holds a fixed index's digest).
enum IndexFormat {
    typealias Field = FormatField
    // 3: span digests; 4: entries are varint records naming their directory (EntryCodec)
    // instead of 96-byte records with the whole path, beside the span digests; 5: `spanKind`
    // (content span digests, indexes built from a TOC); 6: `checkpointSpacing`; 7: sparse
    // windows (`SparseWindow`: bytes the data after a checkpoint never reads are stored as zero);
    // 8: windows deflated with run lengths only (`LayerIndexWriter.storedWindow`).
    static let version: UInt32 = 8
    /// `Header.spanKind`: span digests of compressed bytes (every index not from a TOC).
    static let spanKindCompressed: UInt32 = 0
    /// `Header.spanKind`: one span per checkpoint, digest of its uncompressed bytes (a TOC's).
    static let spanKindContent: UInt32 = 1
    /// Plain tar layers' span size.
    static let plainPieceSize: UInt64 = 1 << 20

    /// The header: what `CacheFileFormat` checks, the counts, where the sections are, the
    /// layer's sizes and digest, and one checksum per record section.
    enum Header {
        static let size = 256
        static let magic = Field(0, 8)        // "STRATAIX"
        static let version = Field(8, 4)
        static let compression = Field(12, 4)   // 0 none, 1 gzip, 2 zstd
        static let blobSize = Field(16, 8)
        static let uncompressedSize = Field(24, 8)
        static let entryCount = Field(32, 4)
        static let xattrCount = Field(36, 4)
        static let sparseCount = Field(40, 4)
        static let checkpointCount = Field(44, 4)
        static let entries = Field(48, 8)
        static let xattrs = Field(56, 8)
        static let sparse = Field(64, 8)
        static let checkpoints = Field(72, 8)
        static let strings = Field(80, 8)
        static let stringsLength = Field(88, 8)
        static let windows = Field(96, 8)
        static let windowsLength = Field(104, 8)
        static let totalLength = Field(112, 8)
        static let checksum = Field(120, 8)   // of the header, this field read as zero
        static let digest = Field(128, 32)    // the raw bytes of the layer's sha256
        static let copySize = Field(160, 8)   // the re-encoded copy's size (0: the layer has none)
        static let entriesChecksum = Field(168, 8)
        static let xattrsChecksum = Field(176, 8)
        static let sparseChecksum = Field(184, 8)
        static let checkpointsChecksum = Field(192, 8)
        static let stringsChecksum = Field(200, 8)
        static let entriesLength = Field(208, 8)   // bytes of the entries section
        static let spanCount = Field(216, 4)
        static let spanKind = Field(220, 4)   // spanKindCompressed or spanKindContent
        static let spans = Field(224, 8)
        static let spansChecksum = Field(232, 8)
        /// The spacing the decoder placed checkpoints at (`IndexBuilder`), so that an index can be
        /// derived again exactly as it was built (`IndexArtifacts.confirm`); 0 for a TOC's index.
        static let checkpointSpacing = Field(240, 8)
        static let reserved = Field(248, 8)   // zero
        static let all = [magic, version, compression, blobSize, uncompressedSize, entryCount, xattrCount, sparseCount,
                          checkpointCount, entries, xattrs, sparse, checkpoints, strings, stringsLength, windows,
                          windowsLength, totalLength, checksum, digest, copySize, entriesChecksum, xattrsChecksum,
                          sparseChecksum, checkpointsChecksum, stringsChecksum, entriesLength, spanCount, spanKind,
                          spans, spansChecksum, checkpointSpacing, reserved]
    }

    /// The entries section is a byte run, laid out by `EntryCodec`: the records, then the
    /// directory table (path offset and length in the strings, 4 + 4 bytes each), then the
    /// restart table (8 bytes each: a record's offset), then a trailer (stream length 8,
    /// directory count 4, restart count 4).

    typealias Xattr = CacheRecord.Xattr
    typealias Sparse = CacheRecord.Sparse

    /// Where decoding can start, in stream order. Source `sourceBlob`: the blob, from a
    /// checkpoint `IndexingDecoder` recorded; its window (deflated) is in the windows section and
    /// checked against `windowChecksum` whenever read. Source `sourceCopy`: a frame of the
    /// layer's re-encoded copy (zstd layers whose frames are too large to decode per read, see
    /// `FrameRecoder`): `compressedOffset` is the frame's offset in the copy and
    /// `storedWindowLength` its compressed size; no window.
    enum Checkpoint {
        static let size = 40
        static let compressedOffset = Field(0, 8)
        static let uncompressedOffset = Field(8, 8)
        static let windowOffset = Field(16, 8)   // in the windows section
        static let storedWindowLength = Field(24, 4)
        static let windowLength = Field(28, 4)
        static let bits = Field(32, 1)
        static let source = Field(33, 1)
        static let pad = Field(34, 2)
        static let windowChecksum = Field(36, 4)
        static let all = [compressedOffset, uncompressedOffset, windowOffset, storedWindowLength, windowLength, bits,
                          source, pad, windowChecksum]
    }
    /// One compressed span of the blob and its sha256 (see the type).
    enum Span {
        static let size = 48
        static let start = Field(0, 8)
        static let end = Field(8, 8)
        static let digest = Field(16, 32)
        static let all = [start, end, digest]
    }

    static let sourceBlob: UInt8 = 0
    static let sourceCopy: UInt8 = 1

    typealias Section = CacheFileFormat.Section
    static let entries = Section("entries", start: Header.entries, count: Header.entriesLength, recordSize: 1,
                                 checksum: Header.entriesChecksum)
    static let xattrs = Section("xattrs", start: Header.xattrs, count: Header.xattrCount, recordSize: Xattr.size,
                                checksum: Header.xattrsChecksum)
    static let sparse = Section("sparse segments", start: Header.sparse, count: Header.sparseCount, recordSize: Sparse.size,
                                checksum: Header.sparseChecksum)
    static let checkpoints = Section("checkpoints", start: Header.checkpoints, count: Header.checkpointCount,
                                     recordSize: Checkpoint.size, checksum: Header.checkpointsChecksum)
    static let strings = Section("strings", start: Header.strings, count: Header.stringsLength, recordSize: 1,
                                 checksum: Header.stringsChecksum)
    /// Each window has its checksum in its checkpoint record.
    static let windows = Section("windows", start: Header.windows, count: Header.windowsLength, recordSize: 1)
    static let spans = Section("span digests", start: Header.spans, count: Header.spanCount, recordSize: Span.size,
                               checksum: Header.spansChecksum)

    /// The sections in file order; each starts 8-byte aligned so record loads stay cheap.
    static let file = CacheFileFormat(
        magic: "STRATAIX", version: version, headerSize: Header.size, magicField: Header.magic, versionField: Header.version,
        totalLength: Header.totalLength, checksum: Header.checksum, checksumCoversHeaderOnly: true, alignment: 8,
        sections: [entries, xattrs, sparse, checkpoints, strings, windows, spans])

    /// The checksum of a section's bytes, as its header field keeps it.
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        fileChecksum(bytes, skipping: 0..<0)
    }

    /// A window's checksum as its checkpoint record keeps it.
    static func windowChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(truncatingIfNeeded: checksum(bytes))
    }
}

/// Builds a cache file: fixed-size records appended zeroed and filled field by field.
struct ByteWriter {
    var bytes: [UInt8] = []

    /// Appends a zeroed record of `size` bytes and fills it (`fill` gets the record alone).
    mutating func record(_ size: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: size))
        bytes.withUnsafeMutableBytes { fill(UnsafeMutableRawBufferPointer(rebasing: $0[start..<(start + size)])) }
    }

    /// Pads with zeros to a multiple of `alignment`.
    mutating func align(_ alignment: Int) {
        while bytes.count % alignment != 0 { bytes.append(0) }
    }

    /// Sets field `f` of the record at `record` (already written).
    mutating func set<T: FixedWidthInteger>(_ value: T, _ record: Int, _ f: FormatField) {
        bytes.withUnsafeMutableBytes { $0.put(value, record, f) }
    }
}
