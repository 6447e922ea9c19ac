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
    private var entries = ByteWriter()
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
        let (pathOff, pathLen) = intern(e.path)
        let (linkOff, linkLen) = intern(e.linkTarget)
        let xattrFirst = xattrCount
        for x in e.xattrs {
            let (no, nl) = intern(x.name)
            let (vo, vl) = intern(x.value)
            xattrs.u32(no); xattrs.u32(nl); xattrs.u32(vo); xattrs.u32(vl)
            xattrCount += 1
        }
        let sparseFirst = sparseCount
        for s in e.sparse ?? [] {
            sparse.u64(s.offset); sparse.u64(s.length)
            sparseCount += 1
        }
        entries.u32(pathOff); entries.u32(pathLen); entries.u32(linkOff); entries.u32(linkLen)
        entries.u8(e.kind.rawValue); entries.u8(e.sparse == nil ? 0 : 1); entries.u16(0)
        entries.u32(e.mode); entries.u32(e.uid); entries.u32(e.gid)
        entries.u64(e.size); entries.u64(e.dataOffset); entries.u64(e.storedSize)
        entries.i64(e.mtimeSeconds); entries.u32(e.mtimeNanoseconds)
        entries.u32(e.devMajor); entries.u32(e.devMinor)
        entries.u32(xattrFirst); entries.u32(xattrCount - xattrFirst)
        entries.u32(sparseFirst); entries.u32(sparseCount - sparseFirst)
        entries.u32(0)
        entryCount += 1
    }

    /// The finished index file. `copy`: frames of the layer's re-encoded copy, which replace
    /// the blob's checkpoints inside the ranges they cover (see `IndexFormat`).
    public func serialize(compression: LayerCompression, blobSize: UInt64, uncompressedSize: UInt64,
                          digest: [UInt8], checkpoints: [Checkpoint], copy: RecodedCopy = RecodedCopy()) -> [UInt8] {
        var checkpointRecords = ByteWriter()
        var windows: [UInt8] = []
        var recordCount: UInt32 = 0
        func blobRecord(_ c: Checkpoint) {
            let stored = c.window.isEmpty ? [] : Gzip.compress(c.window, level: 6)   // 7 % smaller than level 1: the index stays under 2 % of the layer
            checkpointRecords.u64(c.compressedOffset)
            checkpointRecords.u64(c.uncompressedOffset)
            checkpointRecords.u64(UInt64(windows.count))
            checkpointRecords.u32(UInt32(stored.count))
            checkpointRecords.u32(UInt32(c.window.count))
            checkpointRecords.u8(c.bits)
            checkpointRecords.u8(IndexFormat.sourceBlob)
            checkpointRecords.u16(0)
            checkpointRecords.u32(stored.withUnsafeBytes { IndexFormat.windowChecksum($0) })
            windows.append(contentsOf: stored)
            recordCount += 1
        }
        func copyRecord(_ f: RecodedCopy.Frame) {
            checkpointRecords.u64(f.copyOffset)
            checkpointRecords.u64(f.uncompressedOffset)
            checkpointRecords.u64(0)
            checkpointRecords.u32(f.compressedSize)
            checkpointRecords.u32(0)
            checkpointRecords.u8(0)
            checkpointRecords.u8(IndexFormat.sourceCopy)
            checkpointRecords.u16(0)
            checkpointRecords.u32(0)
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
        out.bytes.reserveCapacity(IndexFormat.headerSize + entries.bytes.count + strings.count + windows.count + 1024)
        out.bytes.append(contentsOf: IndexFormat.magic)
        out.u32(IndexFormat.version)
        out.u32(UInt32(compressionCode(compression)))
        out.u64(blobSize)
        out.u64(uncompressedSize)
        out.u32(entryCount); out.u32(xattrCount); out.u32(sparseCount); out.u32(recordCount)
        out.zeros(IndexFormat.headerSize - out.bytes.count)
        for (i, b) in digest.prefix(32).enumerated() { out.bytes[IndexFormat.offDigest + i] = b }
        out.set64(copy.size, at: IndexFormat.offCopySize)

        func section(_ field: Int, _ data: [UInt8], checksum: Int? = nil) {
            // Sections start 8-byte aligned so record loads stay cheap.
            while out.bytes.count % 8 != 0 { out.u8(0) }
            out.set64(UInt64(out.bytes.count), at: field)
            out.bytes.append(contentsOf: data)
            if let checksum { out.set64(data.withUnsafeBytes { IndexFormat.checksum($0) }, at: checksum) }
        }
        section(IndexFormat.offEntries, entries.bytes, checksum: IndexFormat.offEntriesChecksum)
        section(IndexFormat.offXattrs, xattrs.bytes, checksum: IndexFormat.offXattrsChecksum)
        section(IndexFormat.offSparse, sparse.bytes, checksum: IndexFormat.offSparseChecksum)
        section(IndexFormat.offCheckpoints, checkpointRecords.bytes, checksum: IndexFormat.offCheckpointsChecksum)
        section(IndexFormat.offStrings, strings, checksum: IndexFormat.offStringsChecksum)
        out.set64(UInt64(strings.count), at: IndexFormat.offStringsLength)
        section(IndexFormat.offWindows, windows)   // each window has its checksum in its record
        out.set64(UInt64(windows.count), at: IndexFormat.offWindowsLength)
        out.set64(UInt64(out.bytes.count), at: IndexFormat.offTotalLength)
        let sum = out.bytes.withUnsafeBytes {
            IndexFormat.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<IndexFormat.headerSize]), skipping: IndexFormat.checksumField)
        }
        out.set64(sum, at: IndexFormat.offChecksum)
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
