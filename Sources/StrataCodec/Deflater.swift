import CZlib

/// A deflate stream with the gzip wrapper (zlib writes the header and the CRC/ISIZE trailer).
final class Deflater {
    private let zstream: ZStream

    init(level: Int32, strategy: Int32 = Z_DEFAULT_STRATEGY) throws {
        // windowBits 15 + 16 selects the gzip wrapper; memLevel 8 is zlib's default.
        zstream = try ZStream(at: 0, start: {
            deflateInit2_($0, level, Z_DEFLATED, 15 + 16, 8, strategy, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        }, end: { deflateEnd($0) })
    }

    /// Starts a new gzip member with the same parameters (after the previous one was finished).
    func reset() throws {
        let rc = deflateReset(zstream.pointer)
        guard rc == Z_OK else { throw CodecError(kind: .io, message: "deflateReset failed (\(rc))", compressedOffset: 0) }
    }

    /// Errors carry the count of input bytes zlib took in this call.
    func deflate(input: UnsafePointer<UInt8>?, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
                 finish: Bool) throws -> CodecStep {
        try zstream.step(input: input, inputCount: inputCount, output: output, outputCount: outputCount,
                         inputOffset: 0) { CZlib.deflate($0, finish ? Z_FINISH : Z_NO_FLUSH) }
    }
}
