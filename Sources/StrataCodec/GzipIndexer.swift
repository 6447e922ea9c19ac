import CIsal
import CZlib

/// Indexes a gzip blob: parses each member's header, inflates its deflate data, checks its
/// trailer (CRC-32 and size), and records checkpoints (see `IndexingDecoder`): one at each
/// member start, and inside a member one at the first deflate block boundary after each
/// `spacing` bytes of output since the previous checkpoint.
///
/// zlib finds block boundaries itself (`Z_BLOCK`). isa-l, several times faster, does not stop at
/// them: how its checkpoints are found and proven is in GzipIndexerIsal.swift.
final class GzipIndexer {
    let state: IndexingState
    let preferIsal: Bool
    enum Engine { case isal, zlib }
    var engine = Engine.zlib
    var inflater: Inflater?
    // The current member.
    var memberCRC: UInt32 = 0
    var memberSize: UInt64 = 0
    var sinceCheckpoint: UInt64 = 0
    /// zlib: a block boundary, recorded when the member produces more bytes.
    private var pendingBoundary: Checkpoint?

    // isa-l (see GzipIndexerIsal.swift).
    /// The search's input slices: wide at first, narrow after `narrowAfter` bytes without a
    /// boundary. Every isa-l call moves history around (a profile shows memmove inside
    /// isal_inflate at 14 % of a 1 MiB-spaced index's CPU with 32-byte slices only). A slice
    /// that ends inside a block's header finds the boundary, and dynamic headers are mostly
    /// longer than 100 bytes, so 128-byte slices find one within a block or two (a third of
    /// the calls on image a). Shorter headers (fixed-code blocks) are left to the narrow
    /// slices, as before, rather than to the fallback to zlib.
    static let searchChunk = 128
    /// Before slicing, the search leaps: `leapStart` compressed bytes in one call, the decoder's
    /// state saved before it (`IsalInflater.save`, about two slices' worth of copying). A leap
    /// that reads a whole new block header is undone and tried at half the length, so a header
    /// is found in a few calls where slicing takes one per 128 bytes (hundreds per checkpoint
    /// on image b, whose blocks are about 60 KB). A leap that ends inside a header finds it; a
    /// header shorter than `leapMinimum` is left behind (leaps start again past it).
    static let leapStart = 16 << 10
    static let leapMinimum = 32
    static let narrowChunk = 32
    static let narrowAfter: UInt64 = 64 << 10
    static let searchLimit: UInt64 = 256 << 10
    static let verifyLength = 4096
    var isal: IsalInflater?
    /// zlib, proving isa-l's checkpoint candidates.
    var checker: Inflater?
    /// A block boundary isa-l stopped at, waiting for isa-l's next bytes to match zlib's.
    var candidate: Candidate?
    /// Compressed bytes isa-l has decoded in slices looking for a boundary since the last checkpoint.
    var searched: UInt64 = 0
    /// The search's next leap, and whether it is halving towards a header a leap went past.
    var leap = GzipIndexer.leapStart
    var bisecting = false
    struct Candidate {
        var checkpoint: Checkpoint
        var expected: [UInt8]   // zlib's output from the checkpoint
        var matched = 0
        var streamEnds: Bool    // zlib's output ends with the member's deflate stream
    }
    /// What the isa-l path did (tests and measurements).
    struct IsalStats: Equatable {
        var members = 0, candidates = 0, rejected = 0, fallbacks = 0, sliceCalls = 0, leaps = 0
    }
    var isalStats = IsalStats()

    init(state: IndexingState, useIsal: Bool) {
        self.state = state
        preferIsal = useIsal
    }

    /// Advances one step; called only when all output has been handed out.
    func produce() throws {
        switch state.phase {
        case .unitStart: try startMember()
        case .body: if engine == .isal { try isalStep() } else { try inflateStep() }
        case .trailer: try checkTrailer()
        case .end: return
        }
    }

    /// Counts `count` bytes an inflater (zlib or isa-l) just wrote at `target`.
    @inline(__always)
    func tookOutput(_ target: UnsafeMutablePointer<UInt8>, _ count: Int) {
        memberCRC = isalCRC32(memberCRC, target, count)
        state.outEnd += count
        state.produced += UInt64(count)
        memberSize += UInt64(count)
        sinceCheckpoint += UInt64(count)
        state.commitPendingStart()
    }

    private func startMember() throws {
        let reader = state.reader
        if state.unitsStarted > 0 {
            // After a member: the end, zero padding (checked by finish), or another member.
            guard try reader.fill(atLeast: 1) else { state.phase = .end; return }
            let first = reader.bytes[0]
            if first == 0 { state.phase = .end; return }
            guard try reader.fill(atLeast: 2) else { throw state.truncated("gzip header") }
            guard first == 0x1f, reader.bytes[1] == 0x8b else {
                throw CodecError(kind: .trailingGarbage, message: "garbage after the last gzip member", compressedOffset: reader.offset)
            }
        } else {
            guard try reader.fill(atLeast: 1) else { throw state.truncated("empty gzip stream") }
        }
        try GzipHeader.consume(from: reader)
        if preferIsal {
            engine = .isal
            if let isal { isal.reset() } else { isal = IsalInflater() }
            candidate = nil
            searched = 0
            leap = Self.leapStart
            bisecting = false
            isalStats.members += 1
        } else {
            engine = .zlib
            if let inflater { try inflater.reset(at: reader.offset) } else { inflater = try Inflater(at: reader.offset) }
        }
        state.beginUnit()
        memberCRC = 0
        memberSize = 0
        sinceCheckpoint = 0
        pendingBoundary = nil
    }

    private func inflateStep() throws {
        let inflater = inflater!
        let state = state, reader = state.reader
        try state.needInput("gzip member")
        state.compactOutput()
        let wantBoundary = sinceCheckpoint >= state.spacing
        var room = state.out.count - state.outEnd
        // Stop fast inflating where the spacing is reached, so the next boundary is taken.
        if !wantBoundary { room = Int(min(UInt64(room), state.spacing - sinceCheckpoint)) }
        let target = (state.out.baseAddress! + state.outEnd).assumingMemoryBound(to: UInt8.self)
        let step = try inflater.inflate(input: reader.bytes, inputCount: reader.available,
                                        output: target, outputCount: room,
                                        flush: wantBoundary ? Z_BLOCK : Z_NO_FLUSH, inputOffset: reader.offset)
        reader.consume(step.consumed)
        if step.produced > 0 {
            tookOutput(target, step.produced)
            if let boundary = pendingBoundary {
                state.checkpoints.append(boundary)
                pendingBoundary = nil
            }
        }
        state.lastCallFilledOutput = step.produced == room
        if step.ended {
            pendingBoundary = nil
            state.phase = .trailer
            return
        }
        if step.consumed == 0 && step.produced == 0 {
            // zlib wants more input; with input at hand that would be a bug, not data: don't spin.
            if reader.available > 0 && !wantBoundary {
                throw CodecError(kind: .corrupt, message: "inflate makes no progress", compressedOffset: reader.offset)
            }
            state.lastCallFilledOutput = false
        }
        // zran's test: at a block boundary (128) that is not after the last block (64). Only
        // trusted after a Z_BLOCK call, which leaves fewer than 8 bits in zlib's bit buffer.
        let dataType = inflater.dataType
        // Recorded once the next block gives bytes (an empty last block may follow).
        if wantBoundary && dataType & 128 != 0 && dataType & 64 == 0 {
            pendingBoundary = Checkpoint(compressedOffset: reader.offset, uncompressedOffset: state.produced,
                                         bits: UInt8(dataType & 7), window: state.currentWindow())
            sinceCheckpoint = 0
        }
    }

    private func checkTrailer() throws {
        let reader = state.reader
        guard try reader.fill(atLeast: 8) else { throw state.truncated("gzip trailer") }
        let p = reader.bytes
        let crc = UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
        let size = UInt32(p[4]) | UInt32(p[5]) << 8 | UInt32(p[6]) << 16 | UInt32(p[7]) << 24
        guard crc == memberCRC else {
            throw CodecError(kind: .corrupt, message: "gzip member CRC-32 mismatch", compressedOffset: reader.offset)
        }
        guard size == UInt32(truncatingIfNeeded: memberSize) else {
            throw CodecError(kind: .corrupt, message: "gzip member length mismatch", compressedOffset: reader.offset + 4)
        }
        reader.consume(8)
        state.phase = .unitStart
    }
}
