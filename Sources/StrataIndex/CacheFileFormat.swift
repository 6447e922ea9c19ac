/// What the cache's file formats (`IndexFormat`, `MergedTreeFormat`) share, and the one check
/// of it: a magic and a version, a fixed-size header holding the file's total length, a
/// checksum and where each section is. `check` refuses a file that is of another format or
/// version, truncated, fails its checksum, or whose header puts a section outside the file or
/// off its alignment; after it, reading a section's records by the header's numbers stays inside
/// the file (the records' own references are each format's to check).
public struct CacheFileFormat: Sendable {
    /// A run of fixed-size records (or of bytes) whose offset and size the header holds.
    public struct Section: Sendable {
        public let name: String
        /// The header field holding the section's offset in the file (8 bytes).
        public let start: FormatField
        /// The header field holding its record count (4 bytes) or byte length (8 bytes).
        public let count: FormatField
        public let recordSize: Int
        /// The header field holding the checksum of the section's bytes, if it has its own.
        public let checksum: FormatField?

        public init(_ name: String, start: FormatField, count: FormatField, recordSize: Int, checksum: FormatField? = nil) {
            self.name = name; self.start = start; self.count = count; self.recordSize = recordSize; self.checksum = checksum
        }

        /// The section's offset, as the header says (check the file first).
        @inline(__always) public func offset(in b: UnsafeRawBufferPointer) -> Int { Int(truncatingIfNeeded: b.u64(0, start)) }
        /// Its record count (byte length for a byte section), as the header says.
        @inline(__always) public func count(in b: UnsafeRawBufferPointer) -> Int {
            count.width == 4 ? Int(b.u32(0, count)) : Int(truncatingIfNeeded: b.u64(0, count))
        }
        /// Its bytes' place in the file.
        public func range(in b: UnsafeRawBufferPointer) -> Range<Int> {
            let o = offset(in: b)
            return o..<(o + count(in: b) * recordSize)
        }
    }

    public enum Violation: Error, Equatable, Sendable {
        case notThisFormat
        case version(UInt32)
        case truncated(size: Int, expected: UInt64)
        case checksum
        case sectionOutside(String)
    }

    public let magic: [UInt8]
    public let version: UInt32
    public let headerSize: Int
    public let magicField: FormatField
    public let versionField: FormatField
    public let totalLength: FormatField
    public let checksum: FormatField
    /// The checksum covers the header only (each section has its own, checked when read) or
    /// the whole file; either way with its own field read as zero.
    public let checksumCoversHeaderOnly: Bool
    /// Every section starts at a multiple of this.
    public let alignment: Int
    public let sections: [Section]

    public init(magic: String, version: UInt32, headerSize: Int, magicField: FormatField, versionField: FormatField,
                totalLength: FormatField, checksum: FormatField, checksumCoversHeaderOnly: Bool, alignment: Int,
                sections: [Section]) {
        self.magic = Array(magic.utf8); self.version = version; self.headerSize = headerSize
        self.magicField = magicField; self.versionField = versionField; self.totalLength = totalLength
        self.checksum = checksum; self.checksumCoversHeaderOnly = checksumCoversHeaderOnly
        self.alignment = alignment; self.sections = sections
    }

    /// Checks the header and the sections' bounds (see the type). A checksum is checked once
    /// what it covers is known to be there: the header's before the length, the whole file's
    /// after it.
    /// `release(range)`, if given, is called for each stretch of the file a whole-file checksum
    /// has read, so a caller can drop those pages from its resident memory as it goes.
    public func check(_ b: UnsafeRawBufferPointer, release: ((Range<Int>) -> Void)? = nil) throws(Violation) {
        guard b.count >= headerSize, b.baseAddress != nil, b.bytes(0, magicField) == magic else { throw .notThisFormat }
        let v = b.u32(0, versionField)
        guard v == version else { throw .version(v) }
        if checksumCoversHeaderOnly {
            guard checksumOfHeader(b) == b.u64(0, checksum) else { throw .checksum }
        }
        guard b.u64(0, totalLength) == UInt64(b.count) else { throw .truncated(size: b.count, expected: b.u64(0, totalLength)) }
        if !checksumCoversHeaderOnly {
            guard wholeFileChecksum(b, release: release) == b.u64(0, checksum) else { throw .checksum }
        }
        for s in sections {
            let start = b.u64(0, s.start)
            let count = s.count.width == 4 ? UInt64(b.u32(0, s.count)) : b.u64(0, s.count)
            guard start >= UInt64(headerSize), start <= UInt64(b.count), start % UInt64(alignment) == 0,
                  count <= (UInt64(b.count) - start) / UInt64(s.recordSize) else { throw .sectionOutside(s.name) }
        }
    }

    /// `fileChecksum(b, skipping: checksum)`, read in 2 MiB stretches, each handed to
    /// `release` once read.
    private func wholeFileChecksum(_ b: UnsafeRawBufferPointer, release: ((Range<Int>) -> Void)?) -> UInt64 {
        guard let release, b.count > headerSize else { return fileChecksum(b, skipping: checksum.range) }
        var sum = ChecksumStream(count: b.count)
        var header = Array(b[0..<headerSize])
        for i in checksum.range { header[i] = 0 }
        // The header's size is a multiple of 8 in both formats, so the pieces stay on words.
        precondition(headerSize % 8 == 0)
        header.withUnsafeBytes { sum.feed($0) }
        var at = headerSize
        while at < b.count {
            let end = min(b.count, at + (2 << 20))
            sum.feed(UnsafeRawBufferPointer(rebasing: b[at..<end]))
            release(at..<end)
            at = end
        }
        return sum.finalize()
    }

    /// The header's checksum as its checksum field keeps it (that field read as zero).
    public func checksumOfHeader(_ b: UnsafeRawBufferPointer) -> UInt64 {
        fileChecksum(UnsafeRawBufferPointer(rebasing: b[0..<headerSize]), skipping: checksum.range)
    }

    /// Whether section `s` (checked to lie inside the file) matches its own checksum.
    public func sectionIntact(_ s: Section, in b: UnsafeRawBufferPointer) -> Bool {
        guard let field = s.checksum else { return true }
        return fileChecksum(UnsafeRawBufferPointer(rebasing: b[s.range(in: b)]), skipping: 0..<0) == b.u64(0, field)
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
