import CIsal
#if canImport(Glibc)
import Glibc
#endif

/// A raw-deflate inflate stream decoded by isa-l (igzip), about 3–4× faster than zlib.
/// isa-l decodes across block boundaries without stopping, so `GzipIndexer` finds
/// checkpoints by starving it of input (see `atBlockHeader`). The state (~85 KiB) lives in
/// heap memory owned here.
final class IsalInflater {
    private let state: UnsafeMutablePointer<inflate_state>
    /// A copy of `state` taken by `save` (lazily allocated: only the indexer's search uses it).
    private var saved: UnsafeMutableRawPointer?

    init() {
        state = .allocate(capacity: 1)
        isal_inflate_init(state)
        state.pointee.crc_flag = UInt32(ISAL_DEFLATE)
        state.pointee.hist_bits = 0
    }

    deinit {
        state.deallocate()
        saved?.deallocate()
    }

    // The state is about 85 KiB, most of it isa-l's output buffer, of which only the bytes it
    // holds (`tmp_out_valid`: the 32 KiB history and output not yet handed out) matter. Swift
    // does not import that buffer (an array of more than 4096 elements): it is what follows
    // the header buffer, to the end of the state.
    private static func field<T>(_ path: KeyPath<inflate_state, T>) -> (offset: Int, size: Int) {
        (MemoryLayout<inflate_state>.offset(of: path)!, MemoryLayout<T>.size)
    }
    private static let outputBufferOffset = field(\.tmp_in_buffer).offset + field(\.tmp_in_buffer).size
    private static let litTable = field(\.lit_huff_code)
    private static let validOffset = field(\.tmp_out_valid).offset
    /// Whether the state ends with the output buffer as isa-l 2.30 lays it out (2 × 32 KiB
    /// plus 288 bytes of look-ahead): `save` is used only then (the indexer slices otherwise).
    static let canSave = MemoryLayout<inflate_state>.size - outputBufferOffset == 2 * (32 << 10) + 288

    private static func usedBytes(_ state: UnsafeRawPointer) -> Int {
        let valid = state.load(fromByteOffset: validOffset, as: Int32.self)
        return min(outputBufferOffset + max(Int(valid), 0), MemoryLayout<inflate_state>.size)
    }

    /// Remembers where decoding stands, for `restore`: about 55 KiB copied.
    func save() {
        let copy = saved ?? UnsafeMutableRawPointer.allocate(byteCount: MemoryLayout<inflate_state>.size, alignment: 64)
        saved = copy
        copy.copyMemory(from: state, byteCount: Self.usedBytes(state))
    }

    /// Back to where `save` left it, as if the calls since had not been made.
    func restore() {
        guard let saved else { return }
        UnsafeMutableRawPointer(state).copyMemory(from: saved, byteCount: Self.usedBytes(saved))
    }

    /// Whether a block header with a different literal/length code was read since `save`. A
    /// stored block, or a fixed-code block after another, leaves the code as it was.
    var codeChangedSinceSave: Bool {
        guard let saved else { return false }
        return memcmp(UnsafeRawPointer(state) + Self.litTable.offset, saved + Self.litTable.offset, Self.litTable.size) != 0
    }

    /// Ready for a new raw deflate stream.
    func reset() {
        isal_inflate_reset(state)
        state.pointee.crc_flag = UInt32(ISAL_DEFLATE)
        state.pointee.hist_bits = 0
    }

    /// Starts decoding `bits` (0...7, the value's low bits) before the next input byte, with
    /// `window` as history: resumes at a checkpoint. Call right after `reset`.
    func prime(bits: Int, value: UInt8, window: UnsafeBufferPointer<UInt8>, at offset: UInt64) throws {
        if !window.isEmpty {
            let rc = isal_inflate_set_dict(state, UnsafeMutablePointer(mutating: window.baseAddress), UInt32(window.count))
            guard rc == COMP_OK else {
                throw CodecError(kind: .corrupt, message: "isa-l refused the checkpoint window", compressedOffset: offset)
            }
        }
        state.pointee.read_in = UInt64(value) & ((1 << UInt64(bits)) - 1)
        state.pointee.read_in_length = Int32(bits)
    }

    var blockState: isal_block_state { state.pointee.block_state }

    /// Every byte decoded so far has been handed out (none wait in isa-l's internal buffer).
    var outputDrained: Bool { state.pointee.tmp_out_valid == state.pointee.tmp_out_processed }

    /// Between blocks: the next call starts by reading a block header. isa-l is left so when the
    /// input ran out inside the header (ISAL_BLOCK_HDR: the header's bytes stashed) or right
    /// after a stored block (ISAL_BLOCK_NEW_HDR).
    var atBlockHeader: Bool {
        let s = state.pointee.block_state
        return s == ISAL_BLOCK_HDR || s == ISAL_BLOCK_NEW_HDR
    }

    /// Inside a stored block: the input bytes that finish it (isa-l then stops right after it, at
    /// the next block's header, if given exactly these). nil elsewhere.
    var storedBytesLeft: Int? {
        guard state.pointee.block_state == ISAL_BLOCK_TYPE0 else { return nil }
        return max(Int(state.pointee.type0_block_len) - Int(state.pointee.read_in_length) / 8, 0)
    }

    /// Input isa-l has taken but not decoded, in bits: its bit buffer plus stashed header bytes.
    /// The stream position is the input taken so far, less this.
    var undecodedBits: Int { Int(state.pointee.read_in_length) + 8 * Int(state.pointee.tmp_in_size) }

    /// After the deflate stream ended: whole bytes isa-l read past its end (the trailer's).
    var bytesReadPastEnd: Int { Int(state.pointee.read_in_length) / 8 + Int(state.pointee.tmp_in_size) }

    /// Errors carry `inputOffset` (blob offset of `input`); `ended` once the final block is
    /// decoded and all of its output handed out.
    func inflate(input: UnsafePointer<UInt8>, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
                 inputOffset: UInt64) throws -> CodecStep {
        let inCount = UInt32(min(inputCount, Int(UInt32.max)))
        let outCount = UInt32(min(outputCount, Int(UInt32.max)))
        // total_out is 32-bit and only bounds back-references; keep it from wrapping (> 4 GiB members).
        if state.pointee.total_out >= 1 << 31 { state.pointee.total_out -= 1 << 30 }
        state.pointee.next_in = UnsafeMutablePointer(mutating: input)
        state.pointee.avail_in = inCount
        state.pointee.next_out = output
        state.pointee.avail_out = outCount
        let rc = isal_inflate(state)
        let step = CodecStep(consumed: Int(inCount - state.pointee.avail_in),
                             produced: Int(outCount - state.pointee.avail_out),
                             ended: state.pointee.block_state == ISAL_BLOCK_FINISH)
        state.pointee.next_in = nil
        state.pointee.next_out = nil
        guard rc >= 0 else {
            let message: String
            switch rc {
            case ISAL_INVALID_BLOCK: message = "invalid deflate block"
            case ISAL_INVALID_SYMBOL: message = "invalid deflate code"
            case ISAL_INVALID_LOOKBACK: message = "invalid deflate distance too far back"
            default: message = "isa-l inflate error \(rc)"
            }
            throw CodecError(kind: .corrupt, message: message, compressedOffset: inputOffset + UInt64(step.consumed))
        }
        return step
    }
}

/// CRC-32 (gzip's) continued over `count` bytes, with isa-l's folding implementation.
@inline(__always)
func isalCRC32(_ crc: UInt32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> UInt32 {
    var crc = crc
    var done = 0
    while done < count {
        let n = min(count - done, 1 << 30)
        crc = crc32_gzip_refl(crc, bytes + done, UInt64(n))
        done += n
    }
    return crc
}

extension IsalInflater: DecodingEngine {
    var unitName: String { "gzip member" }

    func prime(at checkpoint: Checkpoint, byteBefore: UInt8) throws {
        try checkpoint.window.withUnsafeBufferPointer { try prime(at: checkpoint, byteBefore: byteBefore, window: $0) }
    }

    /// As `prime(at:byteBefore:)`, with `window` in place of the checkpoint's.
    func prime(at checkpoint: Checkpoint, byteBefore: UInt8, window: UnsafeBufferPointer<UInt8>) throws {
        reset()
        let bits = Int(checkpoint.bits)
        try prime(bits: bits, value: byteBefore >> (8 - UInt8(bits)), window: window, at: checkpoint.compressedOffset)
    }

    @inline(__always)
    func step(input: UnsafePointer<UInt8>, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
              inputOffset: UInt64) throws -> CodecStep {
        try inflate(input: input, inputCount: inputCount, output: output, outputCount: outputCount, inputOffset: inputOffset)
    }
}
