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
    private var xattrs = ByteWriter()
    private var sparse = ByteWriter()
    private var strings: [UInt8] = []
    private var entryCount: UInt32 = 0
    private var xattrCount: UInt32 = 0
    private var sparseCount: UInt32 = 0

    public init() {}

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

    /// The entries section (`EntryCodec`): records, directory table, restart table, trailer.
    /// Directory paths go to the strings.
    private mutating func entrySection() -> [UInt8] {
        var out = entries.stream
        let streamLength = UInt64(out.count)
        for path in entries.directoryPaths {
            let (offset, length) = intern(path)
            withUnsafeBytes(of: offset.littleEndian) { out.append(contentsOf: $0) }
            withUnsafeBytes(of: length.littleEndian) { out.append(contentsOf: $0) }
        }
        for r in entries.restarts { withUnsafeBytes(of: r.littleEndian) { out.append(contentsOf: $0) } }
        withUnsafeBytes(of: streamLength.littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(entries.directoryPaths.count).littleEndian) { out.append(contentsOf: $0) }
        withUnsafeBytes(of: UInt32(entries.restarts.count).littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// The finished index file. `copy`: frames of the layer's re-encoded copy, which replace
    /// the blob's checkpoints inside the ranges they cover (see `IndexFormat`).
    public func serialize(compression: LayerCompression, blobSize: UInt64, uncompressedSize: UInt64,
                          digest: [UInt8], checkpoints: [Checkpoint], copy: RecodedCopy = RecodedCopy()) -> [UInt8] {
        var me = self
        let entrySection = me.entrySection()
        let strings = me.strings
        typealias C = IndexFormat.Checkpoint
        typealias H = IndexFormat.Header
        var checkpointRecords = ByteWriter()
        var windows: [UInt8] = []
        var recordCount: UInt32 = 0
        func blobRecord(_ c: Checkpoint) {
            let stored = c.window.isEmpty ? [] : Gzip.compress(c.window, level: 6)   // 7 % smaller than level 1: the index stays under 2 % of the layer
            let windowOffset = UInt64(windows.count)
            checkpointRecords.record(C.size) { r in
                r.put(c.compressedOffset, 0, C.compressedOffset)
                r.put(c.uncompressedOffset, 0, C.uncompressedOffset)
                r.put(windowOffset, 0, C.windowOffset)
                r.put(UInt32(stored.count), 0, C.storedWindowLength)
                r.put(UInt32(c.window.count), 0, C.windowLength)
                r.put(c.bits, 0, C.bits)
                r.put(IndexFormat.sourceBlob, 0, C.source)
                r.put(stored.withUnsafeBytes { IndexFormat.windowChecksum($0) }, 0, C.windowChecksum)
            }
            windows.append(contentsOf: stored)
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
        for c in checkpoints {
            while next < copy.frames.count && copy.frames[next].uncompressedOffset <= c.uncompressedOffset {
                copyRecord(copy.frames[next])
                next += 1
            }
            if !copy.covers(c.uncompressedOffset) { blobRecord(c) }
        }
        while next < copy.frames.count {
            copyRecord(copy.frames[next])
            next += 1
        }
        var out = ByteWriter()
        out.bytes.reserveCapacity(H.size + entrySection.count + strings.count + windows.count + 1024)
        let (entryCount, xattrCount, sparseCount) = (self.entryCount, self.xattrCount, self.sparseCount)
        out.record(H.size) { h in
            h.put(bytes: IndexFormat.file.magic, 0, H.magic)
            h.put(IndexFormat.version, 0, H.version)
            h.put(UInt32(compressionCode(compression)), 0, H.compression)
            h.put(blobSize, 0, H.blobSize)
            h.put(uncompressedSize, 0, H.uncompressedSize)
            h.put(entryCount, 0, H.entryCount); h.put(xattrCount, 0, H.xattrCount)
            h.put(sparseCount, 0, H.sparseCount); h.put(recordCount, 0, H.checkpointCount)
            h.put(bytes: digest, 0, H.digest)
            h.put(copy.size, 0, H.copySize)
        }
        func section(_ s: IndexFormat.Section, _ data: [UInt8]) {
            out.align(IndexFormat.file.alignment)
            out.set(UInt64(out.bytes.count), 0, s.start)
            if s.recordSize == 1 { out.set(UInt64(data.count), 0, s.count) }
            out.bytes.append(contentsOf: data)
            if let checksum = s.checksum { out.set(data.withUnsafeBytes { IndexFormat.checksum($0) }, 0, checksum) }
        }
        section(IndexFormat.entries, entrySection)
        section(IndexFormat.xattrs, xattrs.bytes)
        section(IndexFormat.sparse, sparse.bytes)
        section(IndexFormat.checkpoints, checkpointRecords.bytes)
        section(IndexFormat.strings, strings)
        section(IndexFormat.windows, windows)
        out.set(UInt64(out.bytes.count), 0, H.totalLength)
        let sum = out.bytes.withUnsafeBytes { IndexFormat.file.checksumOfHeader($0) }
        out.set(sum, 0, H.checksum)
        return out.bytes
    }
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
