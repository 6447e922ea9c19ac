import CZlib

/// A `z_stream` for `Inflater` and `Deflater`. zlib keeps a pointer back to it, so it lives in
/// heap memory owned here and never moves; `end` (inflateEnd or deflateEnd) runs at deinit.
final class ZStream {
    let pointer: UnsafeMutablePointer<z_stream>
    private let end: (UnsafeMutablePointer<z_stream>) -> Int32

    /// `start` is inflateInit2_ or deflateInit2_ with the stream's parameters.
    init(at offset: UInt64, start: (UnsafeMutablePointer<z_stream>) -> Int32,
         end: @escaping (UnsafeMutablePointer<z_stream>) -> Int32) throws {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: z_stream())
        self.end = end
        let rc = start(pointer)
        guard rc == Z_OK else {
            let error = zlibError(rc, pointer, at: offset)
            pointer.deinitialize(count: 1)
            pointer.deallocate()
            throw error
        }
    }

    deinit {
        _ = end(pointer)
        pointer.deinitialize(count: 1)
        pointer.deallocate()
    }

    /// One call of `code` (inflate or deflate with its flush) over `input` into `output`. Errors
    /// carry `inputOffset` plus what zlib consumed before failing.
    @inline(__always)
    func step(input: UnsafePointer<UInt8>?, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
              inputOffset: UInt64, _ code: (UnsafeMutablePointer<z_stream>) -> Int32) throws -> CodecStep {
        let inCount = uInt(min(inputCount, Int(UInt32.max)))
        let outCount = uInt(min(outputCount, Int(UInt32.max)))
        pointer.pointee.next_in = UnsafeMutablePointer(mutating: input)
        pointer.pointee.avail_in = inCount
        pointer.pointee.next_out = output
        pointer.pointee.avail_out = outCount
        let rc = code(pointer)
        let step = CodecStep(consumed: Int(inCount - pointer.pointee.avail_in),
                             produced: Int(outCount - pointer.pointee.avail_out),
                             ended: rc == Z_STREAM_END)
        switch rc {
        case Z_OK, Z_STREAM_END, Z_BUF_ERROR:
            return step
        default:
            throw zlibError(rc, pointer, at: inputOffset + UInt64(step.consumed))
        }
    }
}
