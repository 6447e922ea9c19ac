/// The on-disk layout of a layer index. Little-endian, fixed-size records, so a mount maps the
/// file and reads records in place instead of parsing it.
///
///   header (256 bytes) | entries (96 bytes each) | xattrs (16 each) | sparse segments (16 each)
///   | checkpoints (40 each) | strings | windows (each checkpoint window, deflated)
///
/// Every section is checked when it is first read, not the whole file at open (a warm mount
/// reads only the header and the checkpoints): the header's checksum covers the header (its own
/// field read as zero), which holds one checksum per record section, and each checkpoint record
/// holds the checksum of its stored window, checked whenever the window is read. A mismatch is
/// `IndexDamage`: the index is rebuilt from the blob. Nothing in the file depends on where the
/// blob lives, and the same layer always gives the same bytes.
///
/// Checkpoint record: compressed offset u64 | uncompressed offset u64 | window offset u64
/// | stored window length u32 | window length u32 | bits u8 | source u8 | pad u16
/// | window checksum u32. Source 0: the blob, from a checkpoint `IndexingDecoder` recorded.
/// Source 1: a frame of the layer's re-encoded copy (zstd layers whose frames are too large to
/// decode per read, see `FrameRecoder`): the compressed offset is the frame's offset in the copy
/// and the stored window length its compressed size; no window. The copy's size is in the
/// header (0: no copy).
enum IndexFormat {
    static let magic: [UInt8] = Array("STRATAIX".utf8)
    static let version: UInt32 = 2
    static let headerSize = 256
    static let entrySize = 96
    static let xattrSize = 16
    static let sparseSize = 16
    static let checkpointSize = 40

    // Header field offsets.
    static let offVersion = 8
    static let offCompression = 12
    static let offBlobSize = 16
    static let offUncompressedSize = 24
    static let offEntryCount = 32
    static let offXattrCount = 36
    static let offSparseCount = 40
    static let offCheckpointCount = 44
    static let offEntries = 48
    static let offXattrs = 56
    static let offSparse = 64
    static let offCheckpoints = 72
    static let offStrings = 80
    static let offStringsLength = 88
    static let offWindows = 96
    static let offWindowsLength = 104
    static let offTotalLength = 112
    static let offChecksum = 120   // of the header
    static let offDigest = 128     // 32 raw bytes of the layer's sha256
    static let offCopySize = 160
    static let offEntriesChecksum = 168
    static let offXattrsChecksum = 176
    static let offSparseChecksum = 184
    static let offCheckpointsChecksum = 192
    static let offStringsChecksum = 200

    // Checkpoint record field offsets.
    static let cSource = 33
    static let cWindowChecksum = 36
    static let sourceBlob: UInt8 = 0
    static let sourceCopy: UInt8 = 1

    static var checksumField: Range<Int> { offChecksum..<(offChecksum + 8) }

    static func checksum(_ bytes: UnsafeRawBufferPointer, skipping skip: Range<Int>) -> UInt64 {
        fileChecksum(bytes, skipping: skip)
    }

    /// The checksum of a section (no field skipped).
    static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        fileChecksum(bytes, skipping: 0..<0)
    }

    /// A window's checksum as its checkpoint record keeps it.
    static func windowChecksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        UInt32(truncatingIfNeeded: checksum(bytes))
    }
}

/// A 64-bit word-at-a-time checksum of a cache file (layer index, merged tree): fast enough to
/// verify a whole file at every mount, strong enough to catch truncation and bit rot (not an
/// adversary; the blob digest is). `skip` is the checksum field itself, read as zero.
public func fileChecksum(_ bytes: UnsafeRawBufferPointer, skipping skip: Range<Int>) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
    let words = bytes.count / 8
    var i = 0
    while i < words {
        let start = i * 8
        var w = start >= skip.lowerBound && start < skip.upperBound ? 0 : bytes.loadUnaligned(fromByteOffset: start, as: UInt64.self)
        w = w &* 0x87C3_7B91_1142_53D5
        w = (w << 31) | (w >> 33)
        h = (h ^ w) &* 0x4CF5_AD43_2745_937F
        h = (h << 27) | (h >> 37)
        i += 1
    }
    var tail: UInt64 = 0
    var shift: UInt64 = 0
    for j in (words * 8)..<bytes.count {
        tail |= UInt64(bytes[j]) << shift
        shift += 8
    }
    h = (h ^ tail) &* 0x4CF5_AD43_2745_937F
    h ^= h >> 29
    return h
}

/// Appends little-endian fields to a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }
    mutating func zeros(_ n: Int) { bytes.append(contentsOf: repeatElement(0, count: n)) }
    mutating func set64(_ v: UInt64, at offset: Int) {
        withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
    }
    mutating func set32(_ v: UInt32, at offset: Int) {
        withUnsafeBytes(of: v.littleEndian) { for (i, b) in $0.enumerated() { bytes[offset + i] = b } }
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) public func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    @inline(__always) public func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
    @inline(__always) public func i64(_ at: Int) -> Int64 { Int64(bitPattern: u64(at)) }
}
