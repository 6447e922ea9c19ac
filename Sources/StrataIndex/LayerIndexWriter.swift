import StrataCodec

/// One entry as the builder hands it to the writer.
public struct IndexEntryInput {
    public var path: [UInt8]
    public var linkTarget: [UInt8]
    public var kind: IndexEntryKind
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var dataOffset: UInt64
    public var storedSize: UInt64
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var devMajor: UInt32
    public var devMinor: UInt32
    public var xattrs: [(name: [UInt8], value: [UInt8])]
    public var sparse: [(offset: UInt64, length: UInt64)]?

    public init(path: [UInt8], linkTarget: [UInt8] = [], kind: IndexEntryKind, mode: UInt32 = 0, uid: UInt32 = 0,
                gid: UInt32 = 0, size: UInt64 = 0, dataOffset: UInt64 = 0, storedSize: UInt64 = 0,
                mtimeSeconds: Int64 = 0, mtimeNanoseconds: UInt32 = 0, devMajor: UInt32 = 0, devMinor: UInt32 = 0,
                xattrs: [(name: [UInt8], value: [UInt8])] = [], sparse: [(offset: UInt64, length: UInt64)]? = nil) {
        self.path = path; self.linkTarget = linkTarget; self.kind = kind; self.mode = mode; self.uid = uid
        self.gid = gid; self.size = size; self.dataOffset = dataOffset; self.storedSize = storedSize
        self.mtimeSeconds = mtimeSeconds; self.mtimeNanoseconds = mtimeNanoseconds; self.devMajor = devMajor
        self.devMinor = devMinor; self.xattrs = xattrs; self.sparse = sparse
    }
}

/// Accumulates entries and checkpoints of one layer and serialises them in `IndexFormat`.
public struct LayerIndexWriter {
    private var entries = EntryEncoder()
    /// When streaming: the file the entry records go to as they are made.
    private var spill: CacheFileSink?
    private var xattrs = ByteWriter()
    private var sparse = ByteWriter()
    private var strings: [UInt8] = []
    private var entryCount: UInt32 = 0
    private var xattrCount: UInt32 = 0
    private var sparseCount: UInt32 = 0

    public init() {}

    /// A writer that streams its entry records into `sink` (a file) as they pile up.
    init(streamingTo sink: CacheFileSink) { spill = sink }

    /// Appends an entry and, when streaming, writes out the records made so far once they
    /// reach a megabyte.
    mutating func appendStreaming(_ e: IndexEntryInput) throws {
        append(e)
        if let spill, entries.pending >= 1 << 20 {
            try entries.flush { try spill.write($0, at: IndexFormat.Header.size + $1) }
        }
    }

    public var count: Int { Int(entryCount) }

    private mutating func intern(_ bytes: [UInt8]) -> (UInt32, UInt32) {
        let offset = UInt32(strings.count)
        strings.append(contentsOf: bytes)
        return (offset, UInt32(bytes.count))
    }

    public mutating func append(_ e: IndexEntryInput) {
        typealias X = IndexFormat.Xattr
        typealias S = IndexFormat.Sparse
        let xattrFirst = xattrCount
        for x in e.xattrs {
            let (no, nl) = intern(x.name)
            let (vo, vl) = intern(x.value)
            xattrs.record(X.size) { r in
                r.put(no, 0, X.nameOffset); r.put(nl, 0, X.nameLength); r.put(vo, 0, X.valueOffset); r.put(vl, 0, X.valueLength)
            }
            xattrCount += 1
        }
        let sparseFirst = sparseCount
        for s in e.sparse ?? [] {
            sparse.record(S.size) { r in r.put(s.offset, 0, S.offset); r.put(s.length, 0, S.length) }
            sparseCount += 1
        }
        entries.append(e, xattrFirst: xattrFirst, sparseFirst: sparseFirst)
        entryCount += 1
    }

    /// The finished index file. `copy`: frames of the layer's re-encoded copy, which replace
    /// the blob's checkpoints inside the ranges they cover (see `IndexFormat`). `spans`: the
    /// blob's span digests (`SpanHasher`), in blob order.
    public func serialize(compression: LayerCompression, blobSize: UInt64, uncompressedSize: UInt64,
                          digest: [UInt8], checkpoints: [Checkpoint], copy: RecodedCopy = RecodedCopy(),
                          spans: [SpanDigest] = [], contentSkips: [UInt64]? = nil, checkpointSpacing: UInt64 = 0) -> [UInt8] {
        precondition(spill == nil, "a streaming writer finishes into its file")
        let sink = CacheFileSink()
        var me = self
        do {
            try me.finish(into: sink, compression: compression, blobSize: blobSize, uncompressedSize: uncompressedSize,
                          digest: digest, checkpoints: checkpoints, copy: copy, spans: spans, contentSkips: contentSkips,
                          checkpointSpacing: checkpointSpacing)
        } catch {
            preconditionFailure("writing an index to memory cannot fail: \(error)")
        }
        return sink.memory
    }

    /// A checkpoint window as the windows section stores it (a window made again, from the
    /// span before it, must come out byte for byte the same). A sparse window is mostly zero
    /// runs: zlib's run-length strategy stores image a's as small as level 2 did (2.4 KB on
    /// average) in 40 % less time, which every checkpoint of a cold index pays (format 8).
    static func storedWindow(_ window: [UInt8], with compressor: Gzip.Compressor? = nil) -> [UInt8] {
        (compressor ?? windowCompressor()).compress(window)
    }

    /// What `storedWindow` compresses with (one can serve window after window).
    static func windowCompressor() -> Gzip.Compressor { Gzip.Compressor.runLengths() }

    /// Writes the index into `sink` (the one it streams to, if any): the entry records still
    /// held, the entries section's tables, the other sections, then the header. `windows`: the
    /// checkpoints' windows stored so far (those still in `checkpoints` are stored here).
    mutating func finish(into sink: CacheFileSink, compression: LayerCompression, blobSize: UInt64, uncompressedSize: UInt64,
                         digest: [UInt8], checkpoints: [Checkpoint], windows: StoredWindows = StoredWindows(),
                         copy: RecodedCopy = RecodedCopy(), spans: [SpanDigest] = [], contentSkips: [UInt64]? = nil,
                         checkpointSpacing: UInt64 = 0) throws {
        typealias C = IndexFormat.Checkpoint
        typealias H = IndexFormat.Header
        var checkpointRecords = ByteWriter()
        var recordCount: UInt32 = 0
        // A checkpoint without a window points where the next one's starts.
        var windowsEnd: UInt64 = 0
        func blobRecord(_ number: Int, _ c: Checkpoint) throws {
            let stored = try windows.record(number) ?? (c.window.isEmpty ? nil : windows.store(number, c.window))
            if let stored { windowsEnd = stored.offset + UInt64(stored.storedLength) }
            // Content spans have no window: the field holds the bytes to skip (see `IndexFormat`).
            let windowOffset = contentSkips.map { $0[Int(recordCount)] } ?? stored?.offset ?? windowsEnd
            checkpointRecords.record(C.size) { r in
                r.put(c.compressedOffset, 0, C.compressedOffset)
                r.put(c.uncompressedOffset, 0, C.uncompressedOffset)
                r.put(windowOffset, 0, C.windowOffset)
                r.put(stored?.storedLength ?? 0, 0, C.storedWindowLength)
                r.put(stored?.windowLength ?? 0, 0, C.windowLength)
                r.put(c.bits, 0, C.bits)
                r.put(IndexFormat.sourceBlob, 0, C.source)
                r.put(stored?.checksum ?? StoredWindows.emptyChecksum, 0, C.windowChecksum)
            }
            recordCount += 1
        }
        func copyRecord(_ f: RecodedCopy.Frame) {
            checkpointRecords.record(C.size) { r in
                r.put(f.copyOffset, 0, C.compressedOffset)
                r.put(f.uncompressedOffset, 0, C.uncompressedOffset)
                r.put(f.compressedSize, 0, C.storedWindowLength)
                r.put(IndexFormat.sourceCopy, 0, C.source)
            }
            recordCount += 1
        }
        // Both lists are in stream order; a blob checkpoint inside a copied range gives way.
        var next = 0
        for (number, c) in checkpoints.enumerated() {
            while next < copy.frames.count && copy.frames[next].uncompressedOffset <= c.uncompressedOffset {
                copyRecord(copy.frames[next])
                next += 1
            }
            if !copy.covers(c.uncompressedOffset) { try blobRecord(number, c) }
        }
        while next < copy.frames.count {
            copyRecord(copy.frames[next])
            next += 1
        }

        // The entries section, right after the header: records (some perhaps already in the
        // file), then the directory table (paths go to the strings), restarts and trailer.
        try entries.flush { try sink.write($0, at: H.size + $1) }
        let streamLength = entries.flushed
        var tables: [UInt8] = []
        for path in entries.directoryPaths {
            let (offset, length) = intern(path)
            withUnsafeBytes(of: offset.littleEndian) { tables.append(contentsOf: $0) }
            withUnsafeBytes(of: length.littleEndian) { tables.append(contentsOf: $0) }
        }
        for r in entries.restarts { withUnsafeBytes(of: r.littleEndian) { tables.append(contentsOf: $0) } }
        withUnsafeBytes(of: UInt64(streamLength).littleEndian) { tables.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(entries.directoryPaths.count).littleEndian) { tables.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(entries.restarts.count).littleEndian) { tables.append(contentsOf: $0) }
        try sink.write(tables, at: H.size + streamLength)
        let entriesLength = streamLength + tables.count

        var header = ByteWriter()
        let (entryCount, xattrCount, sparseCount) = (self.entryCount, self.xattrCount, self.sparseCount)
        header.record(H.size) { h in
            h.put(bytes: IndexFormat.file.magic, 0, H.magic)
            h.put(IndexFormat.version, 0, H.version)
            h.put(UInt32(compressionCode(compression)), 0, H.compression)
            h.put(blobSize, 0, H.blobSize)
            h.put(uncompressedSize, 0, H.uncompressedSize)
            h.put(entryCount, 0, H.entryCount); h.put(xattrCount, 0, H.xattrCount)
            h.put(sparseCount, 0, H.sparseCount); h.put(recordCount, 0, H.checkpointCount)
            h.put(bytes: digest, 0, H.digest)
            h.put(copy.size, 0, H.copySize)
            h.put(checkpointSpacing, 0, H.checkpointSpacing)
            h.put(UInt32(spans.count), 0, H.spanCount)
            h.put(contentSkips == nil ? IndexFormat.spanKindCompressed : IndexFormat.spanKindContent, 0, H.spanKind)
            h.put(UInt64(H.size), 0, H.entries)
            h.put(UInt64(entriesLength), 0, H.entriesLength)
        }
        header.set(try sink.checksum(at: H.size, count: entriesLength), 0, H.entriesChecksum)
        var end = H.size + entriesLength
        /// Places a section of `count` bytes at the next aligned offset; `write` puts them there.
        func place(_ s: IndexFormat.Section, count: Int, _ write: (Int) throws -> Void) throws {
            let alignment = IndexFormat.file.alignment
            let start = (end + alignment - 1) / alignment * alignment
            if start > end { try sink.write([UInt8](repeating: 0, count: start - end), at: end) }
            header.set(UInt64(start), 0, s.start)
            if s.recordSize == 1 { header.set(UInt64(count), 0, s.count) }
            try write(start)
            end = start + count
        }
        func section(_ s: IndexFormat.Section, _ data: [UInt8]) throws {
            try place(s, count: data.count) { try sink.write(data, at: $0) }
            if let checksum = s.checksum { header.set(data.withUnsafeBytes { IndexFormat.checksum($0) }, 0, checksum) }
        }
        try section(IndexFormat.xattrs, xattrs.bytes)
        try section(IndexFormat.sparse, sparse.bytes)
        try section(IndexFormat.checkpoints, checkpointRecords.bytes)
        try section(IndexFormat.strings, strings)
        precondition(IndexFormat.windows.checksum == nil, "the windows are checked one by one")
        try place(IndexFormat.windows, count: windows.length) { try windows.write(into: sink, at: $0) }
        var spanRecords = ByteWriter()
        for span in spans {
            typealias S = IndexFormat.Span
            spanRecords.record(S.size) { r in
                r.put(span.range.lowerBound, 0, S.start); r.put(span.range.upperBound, 0, S.end)
                r.put(bytes: span.digest, 0, S.digest)
            }
        }
        try section(IndexFormat.spans, spanRecords.bytes)
        header.set(UInt64(end), 0, H.totalLength)
        let sum = header.bytes.withUnsafeBytes { IndexFormat.file.checksumOfHeader($0) }
        header.set(sum, 0, H.checksum)
        try sink.write(header.bytes, at: 0)
    }
}

/// The sha256 of one compressed span of a blob: the bytes `range` of the blob (see `IndexFormat`).
public struct SpanDigest: Sendable, Equatable {
    public var range: Range<UInt64>
    public var digest: [UInt8]
    public init(range: Range<UInt64>, digest: [UInt8]) { self.range = range; self.digest = digest }
}

/// The frames of a layer's re-encoded copy (see `FrameRecoder`), in stream order. Each covers
/// `uncompressedLength` bytes of the stream from `uncompressedOffset`.
public struct RecodedCopy: Sendable, Equatable {
    public struct Frame: Sendable, Equatable {
        public var uncompressedOffset: UInt64
        public var uncompressedLength: UInt64
        public var copyOffset: UInt64
        public var compressedSize: UInt32
        public init(uncompressedOffset: UInt64, uncompressedLength: UInt64, copyOffset: UInt64, compressedSize: UInt32) {
            self.uncompressedOffset = uncompressedOffset; self.uncompressedLength = uncompressedLength
            self.copyOffset = copyOffset; self.compressedSize = compressedSize
        }
    }
    public var frames: [Frame] = []
    /// The copy file's size (0: no copy).
    public var size: UInt64 { frames.last.map { $0.copyOffset + UInt64($0.compressedSize) } ?? 0 }
    public init(frames: [Frame] = []) { self.frames = frames }

    /// Whether a copy frame holds stream offset `offset`.
    func covers(_ offset: UInt64) -> Bool {
        var lo = 0, hi = frames.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if frames[mid].uncompressedOffset + frames[mid].uncompressedLength <= offset { lo = mid + 1 } else { hi = mid }
        }
        return lo < frames.count && frames[lo].uncompressedOffset <= offset
    }
}

func compressionCode(_ c: LayerCompression) -> UInt8 {
    switch c { case .none: 0; case .gzip: 1; case .zstd: 2 }
}

func compression(fromCode code: UInt8) -> LayerCompression? {
    switch code { case 0: LayerCompression.none; case 1: .gzip; case 2: .zstd; default: nil }
}
