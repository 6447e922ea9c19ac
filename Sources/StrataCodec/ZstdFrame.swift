import CZstd

/// Single zstd frames in memory: what a re-encoded copy of a layer is made of (one frame per few
/// MiB of the uncompressed stream, each with its content size and checksum in it, so a frame is
/// decoded on its own and a damaged one is noticed).
public final class ZstdFrameEncoder {
    private let compressor: ZstdCompressor
    private var output: UnsafeMutableRawBufferPointer

    /// `level` 1-3: the copy is made while indexing, where speed matters more than size.
    public init(level: Int32 = 1) throws {
        compressor = try ZstdCompressor(level: level)
        output = .allocate(byteCount: 0, alignment: 16)
    }

    deinit { output.deallocate() }

    /// One frame holding all of `input` (content size and XXH64 content checksum included).
    /// The result is valid until the next call.
    public func encode(_ input: UnsafeRawBufferPointer) throws -> UnsafeRawBufferPointer {
        let bound = ZstdCompressor.bound(input.count)
        if output.count < bound {
            output.deallocate()
            output = .allocate(byteCount: bound, alignment: 16)
        }
        let n = try compressor.compressFrame(input, into: output)
        return UnsafeRawBufferPointer(rebasing: output[0..<n])
    }
}

/// Decodes one whole zstd frame made by `ZstdFrameEncoder`. Reusable, not thread-safe.
public final class ZstdFrameDecoder {
    private let context: OpaquePointer

    public init() throws {
        guard let context = ZSTD_createDCtx() else {
            throw CodecError(kind: .io, message: "ZSTD_createDCtx failed", compressedOffset: 0)
        }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decodes `frame` (exactly one frame) into `output`, which must be exactly its content
    /// size; the frame's checksum is verified. `offset` names the frame's place in errors.
    public func decode(_ frame: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer, offset: UInt64) throws {
        let declared = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        guard declared == UInt64(output.count) else {
            throw CodecError(kind: .corrupt, message: "zstd frame declares \(declared) bytes, expected \(output.count)",
                             compressedOffset: offset)
        }
        let rc = ZSTD_decompressDCtx(context, output.baseAddress, output.count, frame.baseAddress, frame.count)
        if let error = zstdError(rc, at: offset) { throw error }
        guard rc == output.count else {
            throw CodecError(kind: .corrupt, message: "zstd frame decoded to \(rc) bytes, expected \(output.count)",
                             compressedOffset: offset)
        }
    }
}
