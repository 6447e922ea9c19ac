import CZstd

let zstdFrameMagic: UInt32 = 0xFD2F_B528
let zstdSkippableMagicMask: UInt32 = 0xFFFF_FFF0
let zstdSkippableMagic: UInt32 = 0x184D_2A50

/// A zstd result code as a `CodecError`, or nil when it is not an error.
func zstdError(_ rc: Int, at offset: UInt64) -> CodecError? {
    guard ZSTD_isError(rc) != 0 else { return nil }
    let message = String(cString: ZSTD_getErrorName(rc))
    let kind: CodecError.Kind
    switch ZSTD_getErrorCode(rc) {
    case ZSTD_error_memory_allocation: kind = .io
    case ZSTD_error_frameParameter_windowTooLarge, ZSTD_error_frameParameter_unsupported,
         ZSTD_error_dictionary_wrong, ZSTD_error_version_unsupported: kind = .unsupported
    case ZSTD_error_srcSize_wrong: kind = .truncated
    default: kind = .corrupt
    }
    return CodecError(kind: kind, message: message, compressedOffset: offset)
}

/// A streaming zstd decompression context, reset (not recreated) per frame.
final class ZstdDecompressor {
    private let context: OpaquePointer

    init(at offset: UInt64) throws {
        guard let context = ZSTD_createDCtx() else {
            throw CodecError(kind: .io, message: "ZSTD_createDCtx failed", compressedOffset: offset)
        }
        self.context = context
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Forgets the current frame; the next input must start a frame.
    func reset(at offset: UInt64) throws {
        let rc = ZSTD_DCtx_reset(context, ZSTD_reset_session_only)
        if let error = zstdError(rc, at: offset) { throw error }
    }

    /// `ended` when a frame (data or skippable) is complete and fully flushed; zstd stops
    /// consuming input at the frame's end, so `consumed` then reaches exactly to it.
    func decompress(input: UnsafePointer<UInt8>?, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
                    inputOffset: UInt64) throws -> CodecStep {
        var inBuffer = ZSTD_inBuffer(src: input, size: inputCount, pos: 0)
        var outBuffer = ZSTD_outBuffer(dst: output, size: outputCount, pos: 0)
        let rc = ZSTD_decompressStream(context, &outBuffer, &inBuffer)
        if let error = zstdError(rc, at: inputOffset + UInt64(inBuffer.pos)) { throw error }
        return CodecStep(consumed: inBuffer.pos, produced: outBuffer.pos, ended: rc == 0)
    }
}

/// A streaming zstd compression context (content checksum on).
final class ZstdCompressor {
    private let context: OpaquePointer

    init(level: Int32) throws {
        guard let context = ZSTD_createCCtx() else {
            throw CodecError(kind: .io, message: "ZSTD_createCCtx failed", compressedOffset: 0)
        }
        self.context = context
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level))
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1))
    }

    deinit { ZSTD_freeCCtx(context) }

    private func check(_ rc: Int) throws {
        if let error = zstdError(rc, at: 0) { throw error }
    }

    /// One frame holding all of `input` (with its content size in the header).
    func compressFrame(_ input: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let rc = ZSTD_compress2(context, output.baseAddress, output.count, input.baseAddress, input.count)
        try check(rc)
        return rc
    }

    /// Streaming: `end` closes the frame; returns what zstd still holds (0 once a frame is closed).
    func compress(input: UnsafeRawPointer?, inputCount: Int, output: UnsafeMutableRawPointer, outputCount: Int,
                  end: Bool) throws -> (consumed: Int, produced: Int, remaining: Int) {
        var inBuffer = ZSTD_inBuffer(src: input, size: inputCount, pos: 0)
        var outBuffer = ZSTD_outBuffer(dst: output, size: outputCount, pos: 0)
        let rc = ZSTD_compressStream2(context, &outBuffer, &inBuffer, end ? ZSTD_e_end : ZSTD_e_continue)
        try check(rc)
        return (inBuffer.pos, outBuffer.pos, rc)
    }

    static func bound(_ count: Int) -> Int { ZSTD_compressBound(count) }
}

extension ZstdDecompressor: DecodingEngine {
    var unitName: String { "zstd frame" }

    /// A zstd checkpoint is a frame start: nothing to carry over.
    func prime(at checkpoint: Checkpoint, byteBefore: UInt8) throws {
        try reset(at: checkpoint.compressedOffset)
    }

    @inline(__always)
    func step(input: UnsafePointer<UInt8>, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
              inputOffset: UInt64) throws -> CodecStep {
        try decompress(input: input, inputCount: inputCount, output: output, outputCount: outputCount, inputOffset: inputOffset)
    }
}
