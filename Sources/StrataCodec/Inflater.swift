import CZlib

/// One step of a zlib or zstd stream: how much input it took and output it gave.
struct CodecStep {
    var consumed: Int
    var produced: Int
    /// gzip: the deflate stream ended; zstd: the frame ended (and is fully flushed).
    var ended: Bool
}

/// A raw-deflate (no wrapper) inflate stream.
final class Inflater {
    private let zstream: ZStream
    private var stream: UnsafeMutablePointer<z_stream> { zstream.pointer }

    init(at offset: UInt64) throws {
        zstream = try ZStream(at: offset, start: { inflateInit2_($0, -15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) },
                              end: { inflateEnd($0) })
    }

    func reset(at offset: UInt64) throws {
        let rc = inflateReset(stream)
        guard rc == Z_OK else { throw zlibError(rc, stream, at: offset) }
    }

    /// Feeds the `bits` unused high bits of the byte before a checkpoint.
    func prime(bits: Int32, value: Int32, at offset: UInt64) throws {
        let rc = inflatePrime(stream, bits, value)
        guard rc == Z_OK else { throw zlibError(rc, stream, at: offset) }
    }

    func setDictionary(_ window: [UInt8], at offset: UInt64) throws {
        let rc = window.withUnsafeBufferPointer { inflateSetDictionary(stream, $0.baseAddress, uInt($0.count)) }
        guard rc == Z_OK else { throw zlibError(rc, stream, at: offset) }
    }

    /// zlib's `data_type` after the last call: unused bits (& 7), last block (64), at a block boundary (128).
    var dataType: Int32 { stream.pointee.data_type }

    /// Errors carry `inputOffset` (blob offset of `input`) plus what zlib consumed before failing.
    @inline(__always)
    func inflate(input: UnsafePointer<UInt8>?, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
                 flush: Int32, inputOffset: UInt64) throws -> CodecStep {
        try zstream.step(input: input, inputCount: inputCount, output: output, outputCount: outputCount,
                         inputOffset: inputOffset) { CZlib.inflate($0, flush) }
    }
}

/// A zlib return code as a `CodecError`, with zlib's message when it gave one.
func zlibError(_ rc: Int32, _ stream: UnsafeMutablePointer<z_stream>, at offset: UInt64) -> CodecError {
    let detail = stream.pointee.msg.map { String(cString: $0) }
    switch rc {
    case Z_DATA_ERROR:
        return CodecError(kind: .corrupt, message: detail ?? "invalid deflate data", compressedOffset: offset)
    case Z_NEED_DICT:
        return CodecError(kind: .corrupt, message: "deflate stream needs a preset dictionary", compressedOffset: offset)
    case Z_MEM_ERROR:
        return CodecError(kind: .io, message: "zlib out of memory", compressedOffset: offset)
    case Z_VERSION_ERROR:
        return CodecError(kind: .unsupported, message: "zlib version mismatch", compressedOffset: offset)
    default:
        return CodecError(kind: .corrupt, message: detail ?? "zlib error \(rc)", compressedOffset: offset)
    }
}

/// CRC-32 (gzip's) continued over `count` bytes.
@inline(__always)
func crc32Update(_ crc: UInt32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> UInt32 {
    var crc = uLong(crc)
    var done = 0
    while done < count {
        let n = min(count - done, 1 << 30)
        crc = crc32(crc, bytes + done, uInt(n))
        done += n
    }
    return UInt32(truncatingIfNeeded: crc)
}

extension Inflater: DecodingEngine {
    var unitName: String { "gzip member" }

    func prime(at checkpoint: Checkpoint, byteBefore: UInt8) throws {
        let start = checkpoint.compressedOffset
        try reset(at: start)
        let bits = Int32(checkpoint.bits)
        if bits > 0 { try prime(bits: bits, value: Int32(byteBefore) >> (8 - bits), at: start - 1) }
        if !checkpoint.window.isEmpty { try setDictionary(checkpoint.window, at: start) }
    }

    @inline(__always)
    func step(input: UnsafePointer<UInt8>, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
              inputOffset: UInt64) throws -> CodecStep {
        try inflate(input: input, inputCount: inputCount, output: output, outputCount: outputCount,
                    flush: Z_NO_FLUSH, inputOffset: inputOffset)
    }
}
