// Layout of one 512-byte header block and the numeric field codecs shared by reader and writer.

let tarBlockSize = 512

/// Byte ranges of the classic header fields (v7/ustar/GNU share the first 345 bytes).
enum HeaderField {
    static let name = 0..<100
    static let mode = 100..<108
    static let uid = 108..<116
    static let gid = 116..<124
    static let size = 124..<136
    static let mtime = 136..<148
    static let checksum = 148..<156
    static let typeflag = 156
    static let linkname = 157..<257
    static let magic = 257..<263
    static let version = 263..<265
    static let uname = 265..<297
    static let gname = 297..<329
    static let devMajor = 329..<337
    static let devMinor = 337..<345
    static let prefix = 345..<500          // ustar only; GNU reuses this area
    // Old GNU layout of the same area.
    static let gnuSparse = 386             // 4 x (offset[12], numbytes[12])
    static let gnuIsExtended = 482
    static let gnuRealSize = 483..<495
}

enum HeaderMagic {
    case v7, ustar, gnu
}

/// Read-only view of a header block; all accessors are bounds-safe for a 512-byte array.
struct TarHeader {
    let block: [UInt8]

    init(_ block: [UInt8]) {
        precondition(block.count == tarBlockSize)   // internal invariant, never input-driven
        self.block = block
    }

    var isZero: Bool {
        block.withUnsafeBufferPointer { b in
            var any: UInt8 = 0
            for byte in b { any |= byte }
            return any == 0
        }
    }

    var magic: HeaderMagic {
        let m = Array(block[HeaderField.magic])
        if m == Array("ustar\0".utf8) { return .ustar }
        if m == Array("ustar ".utf8) { return .gnu }
        return .v7
    }

    var typeflag: UInt8 { block[HeaderField.typeflag] }

    /// Bytes of a string field up to its first NUL (a full field has no terminator).
    func string(_ range: Range<Int>) -> [UInt8] {
        let field = block[range]
        if let end = field.firstIndex(of: 0) { return Array(block[range.lowerBound..<end]) }
        return Array(field)
    }

    /// Both checksum conventions are accepted: old tars summed signed chars.
    var checksumIsValid: Bool {
        guard let stored = try? parseNumeric(block[HeaderField.checksum], allowNegative: false) else { return false }
        // Sum the whole block (a loop the compiler vectorises), then count the checksum field
        // as spaces. The signed sum (old Sun tars) only when the usual one disagrees.
        var unsigned = 0
        block.withUnsafeBufferPointer { b in
            for byte in b { unsigned &+= Int(byte) }
            for i in HeaderField.checksum { unsigned &+= 32 &- Int(b[i]) }
        }
        if stored == Int64(unsigned) { return true }
        var signed = 0
        block.withUnsafeBufferPointer { b in
            for byte in b { signed &+= Int(Int8(bitPattern: byte)) }
            for i in HeaderField.checksum { signed &+= 32 &- Int(Int8(bitPattern: b[i])) }
        }
        return stored == Int64(signed)
    }
}

struct NumericFieldError: Error {}

/// Parses an octal field (leading spaces, trailing NUL/space; empty means 0) or a GNU
/// base-256 field (high bit of the first byte set). Overflow past Int64 is an error.
func parseNumeric(_ field: ArraySlice<UInt8>, allowNegative: Bool) throws -> Int64 {
    guard let first = field.first else { return 0 }
    if first & 0x80 != 0 {
        // Base-256: two's complement big-endian with the marker bit removed; bit 6 is the sign.
        let negative = first & 0x40 != 0
        if negative && !allowNegative { throw NumericFieldError() }
        var value: UInt64 = negative ? UInt64.max : 0
        var isFirst = true
        for byte in field {
            let b = isFirst ? (negative ? byte | 0x80 : byte & 0x7f) : byte
            isFirst = false
            // Shifting out significant bits means the value does not fit 64 bits.
            let top = UInt8(truncatingIfNeeded: value >> 56)
            if top != (negative ? 0xff : 0x00) { throw NumericFieldError() }
            value = (value << 8) | UInt64(b)
        }
        let result = Int64(bitPattern: value)
        // The sign of the 64-bit result must agree with the field's sign.
        if (result < 0) != negative { throw NumericFieldError() }
        return result
    }
    var i = field.startIndex
    while i < field.endIndex && field[i] == UInt8(ascii: " ") { i += 1 }
    var value: Int64 = 0
    while i < field.endIndex, field[i] >= UInt8(ascii: "0"), field[i] <= UInt8(ascii: "7") {
        let (m, o1) = value.multipliedReportingOverflow(by: 8)
        let (s, o2) = m.addingReportingOverflow(Int64(field[i] - UInt8(ascii: "0")))
        if o1 || o2 { throw NumericFieldError() }
        value = s
        i += 1
    }
    // Only terminators may follow the digits.
    while i < field.endIndex {
        if field[i] != 0 && field[i] != UInt8(ascii: " ") { throw NumericFieldError() }
        i += 1
    }
    return value
}

// MARK: - Writing

/// Largest value a `width`-byte octal field holds (width-1 digits plus a NUL).
func octalLimit(width: Int) -> UInt64 {
    (UInt64(1) << UInt64(3 * (width - 1))) - 1
}

func writeString(_ bytes: [UInt8], into block: inout [UInt8], _ range: Range<Int>) {
    for (i, b) in bytes.prefix(range.count).enumerated() { block[range.lowerBound + i] = b }
}

/// Zero-padded octal, NUL-terminated; caller guarantees it fits.
func writeOctal(_ value: UInt64, into block: inout [UInt8], _ range: Range<Int>) {
    let digits = Array(String(value, radix: 8).utf8)
    let width = range.count - 1
    let padded = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - digits.count)) + digits
    writeString(padded, into: &block, range)
    block[range.upperBound - 1] = 0
}

/// GNU base-256: two's complement big-endian with the top bit of the first byte set.
func writeBase256(_ value: Int64, into block: inout [UInt8], _ range: Range<Int>) {
    var v = UInt64(bitPattern: value)
    let fill: UInt8 = value < 0 ? 0xff : 0
    for i in range.reversed() {
        if range.upperBound - i <= 8 {
            block[i] = UInt8(truncatingIfNeeded: v)
            v >>= 8
        } else {
            block[i] = fill
        }
    }
    block[range.lowerBound] |= 0x80
}

/// Whether a signed value is representable in a base-256 field of `width` bytes.
func fitsBase256(_ value: Int64, width: Int) -> Bool {
    if width >= 9 { return true }
    let bits = 8 * width - 1   // one bit is the marker
    let limit = Int64(1) << Int64(bits - 1)
    return value >= -limit && value < limit
}

func writeChecksum(into block: inout [UInt8]) {
    for i in HeaderField.checksum { block[i] = UInt8(ascii: " ") }
    let sum = block.reduce(UInt64(0)) { $0 + UInt64($1) }
    // Six digits, NUL, space: the traditional layout every reader accepts.
    let digits = Array(String(sum, radix: 8).utf8)
    let padded = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, 6 - digits.count)) + digits
    writeString(padded, into: &block, 148..<154)
    block[154] = 0
    block[155] = UInt8(ascii: " ")
}
