import CZlib

/// A deflate stream with the gzip wrapper (zlib writes the header and the CRC/ISIZE trailer).
/// Heap-allocated for the same reason as `Inflater`.
final class Deflater {
    private let stream: UnsafeMutablePointer<z_stream>

    init(level: Int32, strategy: Int32 = Z_DEFAULT_STRATEGY) throws {
        stream = .allocate(capacity: 1)
        stream.initialize(to: z_stream())
        // windowBits 15 + 16 selects the gzip wrapper; memLevel 8 is zlib's default.
        let rc = deflateInit2_(stream, level, Z_DEFLATED, 15 + 16, 8, strategy,
                               zlibVersion(), Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            let error = zlibError(rc, stream, at: 0)
            stream.deinitialize(count: 1)
            stream.deallocate()
            throw error
        }
    }

    deinit {
        deflateEnd(stream)
        stream.deinitialize(count: 1)
        stream.deallocate()
    }

    func deflate(input: UnsafePointer<UInt8>?, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
                 finish: Bool) throws -> CodecStep {
        let inCount = uInt(min(inputCount, Int(UInt32.max)))
        let outCount = uInt(min(outputCount, Int(UInt32.max)))
        stream.pointee.next_in = UnsafeMutablePointer(mutating: input)
        stream.pointee.avail_in = inCount
        stream.pointee.next_out = output
        stream.pointee.avail_out = outCount
        let rc = CZlib.deflate(stream, finish ? Z_FINISH : Z_NO_FLUSH)
        let step = CodecStep(consumed: Int(inCount - stream.pointee.avail_in),
                             produced: Int(outCount - stream.pointee.avail_out),
                             ended: rc == Z_STREAM_END)
        switch rc {
        case Z_OK, Z_STREAM_END, Z_BUF_ERROR:
            return step
        default:
            throw zlibError(rc, stream, at: 0)
        }
    }
}
