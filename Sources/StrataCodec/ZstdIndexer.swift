/// Indexes a zstd blob: one checkpoint at each frame start (its magic number), skippable
/// frames passed over, only zero bytes after the last frame.
final class ZstdIndexer {
    private let state: IndexingState
    private var zstd: ZstdDecompressor?

    init(state: IndexingState) { self.state = state }

    /// Advances one step; called only when all output has been handed out.
    func produce() throws {
        switch state.phase {
        case .unitStart: try startFrame()
        case .body, .trailer: try decodeStep()
        case .end: return
        }
    }

    private func startFrame() throws {
        let reader = state.reader
        guard try reader.fill(atLeast: 1) else {
            if state.unitsStarted == 0 { throw state.truncated("empty zstd stream") }
            state.phase = .end
            return
        }
        if state.unitsStarted > 0 && reader.bytes[0] == 0 { state.phase = .end; return }
        guard try reader.fill(atLeast: 4) else { throw state.truncated("zstd frame header") }
        let p = reader.bytes
        let magic = UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
        guard magic == zstdFrameMagic || magic & zstdSkippableMagicMask == zstdSkippableMagic else {
            if state.unitsStarted > 0 {
                throw CodecError(kind: .trailingGarbage, message: "garbage after the last zstd frame", compressedOffset: reader.offset)
            }
            throw CodecError(kind: .corrupt, message: "not a zstd frame (bad magic)", compressedOffset: reader.offset)
        }
        if let zstd { try zstd.reset(at: reader.offset) } else { zstd = try ZstdDecompressor(at: reader.offset) }
        state.beginUnit()
    }

    private func decodeStep() throws {
        let zstd = zstd!
        let state = state, reader = state.reader
        try state.needInput("zstd frame")
        state.outEnd = 0
        state.outDelivered = 0
        let target = state.out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let step = try zstd.decompress(input: reader.bytes, inputCount: reader.available,
                                       output: target, outputCount: state.out.count, inputOffset: reader.offset)
        reader.consume(step.consumed)
        if step.produced > 0 {
            state.outEnd = step.produced
            state.produced += UInt64(step.produced)
            state.commitPendingStart()
        }
        state.lastCallFilledOutput = step.produced == state.out.count
        if step.ended {
            state.phase = .unitStart
            state.lastCallFilledOutput = false
        } else if step.consumed == 0 && step.produced == 0 && reader.available > 0 {
            throw CodecError(kind: .corrupt, message: "zstd makes no progress", compressedOffset: reader.offset)
        }
    }
}
