import CZlib

/// RFC 1952 member header, parsed ourselves so the body can be inflated raw and every
/// checkpoint's offset is a plain blob offset.
enum GzipHeader {
    private static let fhcrc: UInt8 = 2, fextra: UInt8 = 4, fname: UInt8 = 8, fcomment: UInt8 = 16

    /// Consumes one member header, checking its fields; the reader then stands at the raw deflate data.
    static func consume(from reader: BlobReader) throws {
        let start = reader.offset
        guard try reader.fill(atLeast: 10) else { throw truncated(reader) }
        let p = reader.bytes
        guard p[0] == 0x1f, p[1] == 0x8b else {
            throw CodecError(kind: .corrupt, message: "not a gzip member (bad magic)", compressedOffset: start)
        }
        guard p[2] == 8 else {
            throw CodecError(kind: .unsupported, message: "gzip compression method \(p[2])", compressedOffset: start + 2)
        }
        let flags = p[3]
        guard flags & 0xe0 == 0 else {
            throw CodecError(kind: .corrupt, message: "reserved gzip header flags set", compressedOffset: start + 3)
        }
        var crc = crc32Update(0, p, 10)
        reader.consume(10)

        if flags & fextra != 0 {
            guard try reader.fill(atLeast: 2) else { throw truncated(reader) }
            let length = Int(reader.bytes[0]) | Int(reader.bytes[1]) << 8
            crc = crc32Update(crc, reader.bytes, 2)
            reader.consume(2)
            guard try reader.fill(atLeast: length) else { throw truncated(reader) }
            crc = crc32Update(crc, reader.bytes, length)
            reader.consume(length)
        }
        if flags & fname != 0 { try skipZeroTerminated(reader, crc: &crc) }
        if flags & fcomment != 0 { try skipZeroTerminated(reader, crc: &crc) }
        if flags & fhcrc != 0 {
            guard try reader.fill(atLeast: 2) else { throw truncated(reader) }
            let stored = UInt32(reader.bytes[0]) | UInt32(reader.bytes[1]) << 8
            guard stored == crc & 0xffff else {
                throw CodecError(kind: .corrupt, message: "gzip header CRC mismatch", compressedOffset: reader.offset)
            }
            reader.consume(2)
        }
    }

    private static func skipZeroTerminated(_ reader: BlobReader, crc: inout UInt32) throws {
        while true {
            if reader.available == 0 {
                guard try reader.fill(atLeast: 1) else { throw truncated(reader) }
            }
            let p = reader.bytes
            let count = reader.available
            var i = 0
            while i < count && p[i] != 0 { i += 1 }
            let taken = i < count ? i + 1 : count
            crc = crc32Update(crc, p, taken)
            reader.consume(taken)
            if i < count { return }
        }
    }

    private static func truncated(_ reader: BlobReader) -> CodecError {
        CodecError(kind: .truncated, message: "gzip header truncated", compressedOffset: reader.readOffset)
    }
}
