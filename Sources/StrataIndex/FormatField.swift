/// One little-endian field of a cache file's header or records (`IndexFormat`,
/// `MergedTreeFormat`): where it starts in its record and how many bytes it has. Writers store
/// and readers load through the same constants, so a field's place is written down once.
/// Declared as `static let`s of the format, they fold into constant offsets in optimised code
/// (frozen and inlinable, so also in modules other than this one).
@frozen public struct FormatField: Sendable, Equatable {
    public let offset: Int
    public let width: Int
    @inlinable @inline(__always) public init(_ offset: Int, _ width: Int) {
        self.offset = offset
        self.width = width
    }
    public var range: Range<Int> { offset..<(offset + width) }
    /// The field's last byte plus one: where the next field may start.
    public var end: Int { offset + width }

    /// Whether `fields`, in any order, tile a record of `size` bytes: no gap, no overlap,
    /// nothing past its end (what every record's `all` must do).
    public static func tile(_ fields: [FormatField], size: Int) -> Bool {
        var end = 0
        for f in fields.sorted(by: { $0.offset < $1.offset }) {
            guard f.offset == end, f.width > 0 else { return false }
            end = f.end
        }
        return end == size
    }
}

/// Records both cache formats hold alike.
public enum CacheRecord {
    /// One extended attribute: name and value, each (offset, length) in the file's strings.
    public enum Xattr {
        // Computed and inlinable, so another module's reads fold into constant offsets too.
        @inlinable public static var size: Int { 16 }
        @inlinable public static var nameOffset: FormatField { FormatField(0, 4) }
        @inlinable public static var nameLength: FormatField { FormatField(4, 4) }
        @inlinable public static var valueOffset: FormatField { FormatField(8, 4) }
        @inlinable public static var valueLength: FormatField { FormatField(12, 4) }
        public static let all = [nameOffset, nameLength, valueOffset, valueLength]

        /// The first of `count` records at `start` whose name or value is not inside strings
        /// of `stringsLength` bytes; nil when all are.
        public static func firstMalformed(_ b: UnsafeRawBufferPointer, start: Int, count: Int, stringsLength: Int) -> Int? {
            (0..<count).first { i in
                let r = start + i * size
                return !b.fits(r, nameOffset, nameLength, within: stringsLength) || !b.fits(r, valueOffset, valueLength, within: stringsLength)
            }
        }
    }

    /// One data segment of a sparse file, in file offsets.
    public enum Sparse {
        @inlinable public static var size: Int { 16 }
        @inlinable public static var offset: FormatField { FormatField(0, 8) }
        @inlinable public static var length: FormatField { FormatField(8, 8) }
        public static let all = [offset, length]
    }
}

extension UnsafeRawBufferPointer {
    @inlinable @inline(__always) public func u8(_ record: Int, _ f: FormatField) -> UInt8 {
        assert(f.width == 1)
        return self[record + f.offset]
    }
    @inlinable @inline(__always) public func u16(_ record: Int, _ f: FormatField) -> UInt16 {
        assert(f.width == 2)
        return UInt16(littleEndian: loadUnaligned(fromByteOffset: record + f.offset, as: UInt16.self))
    }
    @inlinable @inline(__always) public func u32(_ record: Int, _ f: FormatField) -> UInt32 {
        assert(f.width == 4)
        return u32(record + f.offset)
    }
    @inlinable @inline(__always) public func u64(_ record: Int, _ f: FormatField) -> UInt64 {
        assert(f.width == 8)
        return u64(record + f.offset)
    }
    @inlinable @inline(__always) public func i64(_ record: Int, _ f: FormatField) -> Int64 { Int64(bitPattern: u64(record, f)) }
    /// Whether the run (`first`, `count`: two u32 fields of the record at `record`) ends
    /// within `limit`: a string inside the strings, a range of records inside their section.
    @inlinable @inline(__always) public func fits(_ record: Int, _ first: FormatField, _ count: FormatField, within limit: Int) -> Bool {
        Int(u32(record, first)) + Int(u32(record, count)) <= limit
    }
    /// A field of raw bytes (a magic, a digest), copied.
    public func bytes(_ record: Int, _ f: FormatField) -> [UInt8] { Array(self[(record + f.offset)..<(record + f.end)]) }

    @inlinable @inline(__always) public func u32(_ at: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
    @inlinable @inline(__always) public func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
    @inlinable @inline(__always) public func i64(_ at: Int) -> Int64 { Int64(bitPattern: u64(at)) }
}

extension UnsafeMutableRawBufferPointer {
    /// Stores `value` little-endian in field `f` of the record at `record`; the field's width
    /// must be the value's.
    @inlinable @inline(__always) public func put<T: FixedWidthInteger>(_ value: T, _ record: Int, _ f: FormatField) {
        precondition(f.width == MemoryLayout<T>.size, "field of \(f.width) bytes written as \(MemoryLayout<T>.size)")
        storeBytes(of: value.littleEndian, toByteOffset: record + f.offset, as: T.self)
    }
    /// Copies raw bytes (a magic, a digest) into field `f`, at most its width.
    public func put(bytes: [UInt8], _ record: Int, _ f: FormatField) {
        for (i, b) in bytes.prefix(f.width).enumerated() { self[record + f.offset + i] = b }
    }
}
