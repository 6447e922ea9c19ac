import CIsal
import CZlib
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Decodes a layer blob once, front to back, at index time: yields the uncompressed stream,
/// hands every compressed byte to `onCompressedBytes` (for the digest), verifies each gzip
/// member's CRC-32 and size, and records `checkpoints` from which `SpanDecoder` can resume.
///
/// Checkpoints (uncompressed offsets strictly increasing, the first at 0):
/// - gzip: one at each member start, `compressedOffset` = the first byte of the member's raw
///   deflate data (just past its gzip header), bits 0, window empty; and inside a member one at
///   the first deflate block boundary after each `checkpointSpacing` bytes of output since the
///   previous checkpoint: `compressedOffset` = the first byte inflate has not taken at all;
///   `bits` (0...7) = how many high bits of the byte at `compressedOffset - 1` are still unread
///   (0: start at `compressedOffset` exactly); `window` = the member's last ≤ 32 KiB of output.
///   An empty window therefore always means a member start.
/// - zstd: one at each frame start (`compressedOffset` = the frame's magic number).
/// - none: the one at 0.
/// A member or frame that produces nothing gets no checkpoint of its own: a start at the same
/// uncompressed offset as the previous checkpoint replaces it, so every checkpoint produces bytes.
///
/// gzip members are inflated by isa-l (several times faster than zlib), checkpoints staying
/// zlib's: isa-l does not stop at block boundaries, so once a checkpoint is due it is fed the
/// input in `searchChunk`-byte slices until it stops inside (or right before) a block header,
/// whose bit position then follows from what it holds undecoded. Each such candidate is proven
/// before it is recorded: zlib resumed there (as `SpanDecoder` will) must reproduce isa-l's next
/// `verifyLength` bytes. A member where no boundary is found within `searchLimit` compressed
/// bytes is decoded again by zlib from its last checkpoint and finished by zlib.
/// `STRATA_GZIP_INFLATE=zlib` in the environment selects zlib throughout.
public final class IndexingDecoder {
    public let compression: LayerCompression
    public private(set) var checkpoints: [Checkpoint] = []
    /// Blob bytes the decoder has consumed (equals the blob size after `finish`).
    public var compressedBytesConsumed: UInt64 { reader.offset }
    /// Uncompressed bytes handed out by `read` (and drained by `finish`).
    public var uncompressedBytesProduced: UInt64 { produced - UInt64(outEnd - outDelivered) }

    static let windowSize = 32 << 10
    private static let outputCapacity = windowSize + (512 << 10)
    private static let minimumFreeOutput = 64 << 10

    private let reader: BlobReader
    private let spacing: UInt64
    private var inflater: Inflater?
    private var zstd: ZstdDecompressor?
    /// Output not yet handed out, preceded (gzip) by up to 32 KiB of the member's earlier output.
    private let out: UnsafeMutableRawBufferPointer
    private var outEnd = 0
    private var outDelivered = 0
    private var produced: UInt64 = 0
    private var phase = Phase.unitStart
    private var unitsStarted = 0
    private var pendingStart: Checkpoint?
    private var lastCallFilledOutput = false
    // The current gzip member.
    private var memberCRC: UInt32 = 0
    private var memberSize: UInt64 = 0
    private var sinceCheckpoint: UInt64 = 0
    /// zlib: a block boundary, recorded when the member produces more bytes.
    private var pendingBoundary: Checkpoint?

    private enum Phase { case unitStart, body, trailer, end }

    // isa-l (see the type's comment).
    static let searchChunk = 32
    static let searchLimit: UInt64 = 256 << 10
    static let verifyLength = 4096
    private enum Engine { case isal, zlib }
    private let preferIsal: Bool
    private var engine = Engine.zlib
    private var isal: IsalInflater?
    /// zlib, proving isa-l's checkpoint candidates.
    private var checker: Inflater?
    /// A block boundary isa-l stopped at, waiting for isa-l's next bytes to match zlib's.
    private var candidate: Candidate?
    /// Compressed bytes isa-l has decoded in slices looking for a boundary since the last checkpoint.
    private var searched: UInt64 = 0
    private struct Candidate {
        var checkpoint: Checkpoint
        var expected: [UInt8]   // zlib's output from the checkpoint
        var matched = 0
        var streamEnds: Bool    // zlib's output ends with the member's deflate stream
    }
    /// What the isa-l path did (tests and measurements).
    struct IsalStats: Equatable {
        var members = 0, candidates = 0, rejected = 0, fallbacks = 0, sliceCalls = 0
    }
    private(set) var isalStats = IsalStats()

    public convenience init(compression: LayerCompression, file: FileDescriptor, blobSize: UInt64,
                            checkpointSpacing: UInt64 = 4 << 20,
                            onCompressedBytes: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.init(compression: compression, blob: BlobFile(file), blobSize: blobSize, checkpointSpacing: checkpointSpacing,
                  onCompressedBytes: onCompressedBytes)
    }

    /// Decodes a blob that may be a range of its file (a member of an image archive).
    public convenience init(compression: LayerCompression, blob file: BlobFile, blobSize: UInt64,
                            checkpointSpacing: UInt64 = 4 << 20,
                            onCompressedBytes: @escaping (UnsafeRawBufferPointer) -> Void) {
        let reader = BlobReader(size: blobSize, chunkSize: 1 << 20,
                                source: { buffer, offset in try preadChecked(file, into: buffer, at: offset) },
                                onBytes: onCompressedBytes)
        self.init(compression: compression, reader: reader, checkpointSpacing: checkpointSpacing)
    }

    init(compression: LayerCompression, reader: BlobReader, checkpointSpacing: UInt64, useIsal: Bool? = nil) {
        self.compression = compression
        self.reader = reader
        preferIsal = useIsal ?? Self.isalFromEnvironment
        spacing = max(checkpointSpacing, 1)
        out = .allocate(byteCount: compression == .none ? 0 : Self.outputCapacity, alignment: 16)
        if compression == .none {
            checkpoints = [Checkpoint(compressedOffset: 0, uncompressedOffset: 0)]
        }
    }

    deinit { out.deallocate() }

    static var isalFromEnvironment: Bool { RuntimeSettings.current.gzipInflateWithIsal }

    /// Fills `buffer` with the next uncompressed bytes; fewer only at the end of the stream (0 there).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if compression == .none { return try readPassThrough(into: buffer) }
        var filled = 0
        while filled < buffer.count {
            if outDelivered < outEnd {
                let n = min(buffer.count - filled, outEnd - outDelivered)
                (buffer.baseAddress! + filled).copyMemory(from: out.baseAddress! + outDelivered, byteCount: n)
                outDelivered += n
                filled += n
                continue
            }
            if phase == .end { break }
            try produce()
        }
        return filled
    }

    /// Call after `read` returned 0 (or to stop early: the rest is decoded, checked and dropped).
    /// Reads and hashes the rest of the blob; only zero bytes may follow the last member or frame.
    public func finish() throws {
        if compression == .none {
            while try reader.available > 0 || reader.fill(atLeast: 1) {
                produced += UInt64(reader.available)
                reader.consume(reader.available)
            }
            return
        }
        while phase != .end {
            outDelivered = outEnd
            try produce()
        }
        outDelivered = outEnd
        while try reader.available > 0 || reader.fill(atLeast: 1) {
            let p = reader.bytes
            for i in 0..<reader.available where p[i] != 0 {
                throw CodecError(kind: .trailingGarbage, message: "non-zero bytes after the last \(unitName)",
                                 compressedOffset: reader.offset + UInt64(i))
            }
            reader.consume(reader.available)
        }
    }

    private var unitName: String { compression == .zstd ? "zstd frame" : "gzip member" }

    private func readPassThrough(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            if reader.available == 0 {
                guard try reader.fill(atLeast: 1) else { break }
            }
            let n = min(buffer.count - filled, reader.available)
            (buffer.baseAddress! + filled).copyMemory(from: reader.bytes, byteCount: n)
            reader.consume(n)
            filled += n
            produced += UInt64(n)
        }
        return filled
    }

    /// Advances the decoder one step; called only when all output has been handed out.
    private func produce() throws {
        switch (compression, phase) {
        case (_, .end), (.none, _):
            return
        case (.gzip, .unitStart):
            try startMember()
        case (.gzip, .body):
            if engine == .isal { try isalStep() } else { try inflateStep() }
        case (.gzip, .trailer):
            try checkTrailer()
        case (.zstd, .unitStart):
            try startFrame()
        case (.zstd, _):
            try zstdStep()
        }
    }

    // MARK: Checkpoints

    /// Counts `count` bytes a gzip inflater (zlib or isa-l) just wrote at `target`.
    @inline(__always)
    private func tookOutput(_ target: UnsafeMutablePointer<UInt8>, _ count: Int) {
        memberCRC = isalCRC32(memberCRC, target, count)
        outEnd += count
        produced += UInt64(count)
        memberSize += UInt64(count)
        sinceCheckpoint += UInt64(count)
        commitPendingStart()
    }

    /// A gzip member's or zstd frame's body starts here: a checkpoint candidate, empty output.
    private func beginUnit() {
        unitsStarted += 1
        markUnitStart()
        outEnd = 0
        outDelivered = 0
        lastCallFilledOutput = false
        phase = .body
    }

    private func markUnitStart() {
        let start = Checkpoint(compressedOffset: reader.offset, uncompressedOffset: produced)
        if checkpoints.isEmpty { checkpoints.append(start) } else { pendingStart = start }
    }

    /// A member/frame start counts once it produces bytes; it replaces a checkpoint at the same offset.
    private func commitPendingStart() {
        guard let start = pendingStart else { return }
        pendingStart = nil
        if checkpoints.last?.uncompressedOffset == start.uncompressedOffset {
            checkpoints[checkpoints.count - 1] = start
        } else {
            checkpoints.append(start)
        }
    }

    private func truncated(_ what: String) -> CodecError {
        CodecError(kind: .truncated, message: "\(what) truncated", compressedOffset: reader.readOffset)
    }

    // MARK: gzip

    private func startMember() throws {
        if unitsStarted > 0 {
            // After a member: the end, zero padding (checked by finish), or another member.
            guard try reader.fill(atLeast: 1) else { phase = .end; return }
            let first = reader.bytes[0]
            if first == 0 { phase = .end; return }
            guard try reader.fill(atLeast: 2) else { throw truncated("gzip header") }
            guard first == 0x1f, reader.bytes[1] == 0x8b else {
                throw CodecError(kind: .trailingGarbage, message: "garbage after the last gzip member", compressedOffset: reader.offset)
            }
        } else {
            guard try reader.fill(atLeast: 1) else { throw truncated("empty gzip stream") }
        }
        try GzipHeader.consume(from: reader)
        if preferIsal {
            engine = .isal
            if let isal { isal.reset() } else { isal = IsalInflater() }
            candidate = nil
            searched = 0
            isalStats.members += 1
        } else {
            engine = .zlib
            if let inflater { try inflater.reset(at: reader.offset) } else { inflater = try Inflater(at: reader.offset) }
        }
        beginUnit()
        memberCRC = 0
        memberSize = 0
        sinceCheckpoint = 0
        pendingBoundary = nil
    }

    private func inflateStep() throws {
        let inflater = inflater!
        // Output left full may still hold pending bytes inside zlib: call again before asking for input.
        if reader.available == 0 && !lastCallFilledOutput {
            guard try reader.fill(atLeast: 1) else { throw truncated("gzip member") }
        }
        compactOutput()
        let wantBoundary = sinceCheckpoint >= spacing
        var room = out.count - outEnd
        // Stop fast inflating where the spacing is reached, so the next boundary is taken.
        if !wantBoundary { room = Int(min(UInt64(room), spacing - sinceCheckpoint)) }
        let target = (out.baseAddress! + outEnd).assumingMemoryBound(to: UInt8.self)
        let step = try inflater.inflate(input: reader.bytes, inputCount: reader.available,
                                        output: target, outputCount: room,
                                        flush: wantBoundary ? Z_BLOCK : Z_NO_FLUSH, inputOffset: reader.offset)
        reader.consume(step.consumed)
        if step.produced > 0 {
            tookOutput(target, step.produced)
            if let boundary = pendingBoundary {
                checkpoints.append(boundary)
                pendingBoundary = nil
            }
        }
        lastCallFilledOutput = step.produced == room
        if step.ended {
            pendingBoundary = nil
            phase = .trailer
            return
        }
        if step.consumed == 0 && step.produced == 0 {
            // zlib wants more input; with input at hand that would be a bug, not data: don't spin.
            if reader.available > 0 && !wantBoundary {
                throw CodecError(kind: .corrupt, message: "inflate makes no progress", compressedOffset: reader.offset)
            }
            lastCallFilledOutput = false
        }
        // zran's test: at a block boundary (128) that is not after the last block (64). Only
        // trusted after a Z_BLOCK call, which leaves fewer than 8 bits in zlib's bit buffer.
        let dataType = inflater.dataType
        // Recorded once the next block gives bytes (an empty last block may follow).
        if wantBoundary && dataType & 128 != 0 && dataType & 64 == 0 {
            pendingBoundary = Checkpoint(compressedOffset: reader.offset, uncompressedOffset: produced,
                                         bits: UInt8(dataType & 7), window: currentWindow())
            sinceCheckpoint = 0
        }
    }

    /// Called when everything is handed out: keeps only the 32 KiB window a checkpoint may need.
    private func compactOutput() {
        if out.count - outEnd < Self.minimumFreeOutput {
            let keep = min(outEnd, Self.windowSize)
            out.baseAddress!.copyMemory(from: out.baseAddress! + (outEnd - keep), byteCount: keep)
            outEnd = keep
            outDelivered = keep
        }
    }

    /// The member's last ≤ 32 KiB of output.
    private func currentWindow() -> [UInt8] {
        let keep = min(outEnd, Self.windowSize)
        return [UInt8](UnsafeRawBufferPointer(rebasing: out[(outEnd - keep)..<outEnd]))
    }

    // MARK: gzip with isa-l

    private func isalStep() throws {
        let isal = isal!
        if reader.available == 0 && !lastCallFilledOutput {
            guard try reader.fill(atLeast: 1) else { throw truncated("gzip member") }
        }
        compactOutput()
        let searching = sinceCheckpoint >= spacing && candidate == nil
        if searching && searched >= Self.searchLimit && isal.outputDrained {
            try fallBackToZlib()
            return
        }
        var room = out.count - outEnd
        if let candidate {
            // Just what the candidate is checked against (one byte more if zlib's output ended).
            room = min(room, max(candidate.expected.count - candidate.matched, 1))
        } else if !searching {
            // Stop where the spacing is reached, so the search starts there.
            room = Int(min(UInt64(room), spacing - sinceCheckpoint))
        }
        var inCount = reader.available
        if searching {
            // A stored block's end is known: stop exactly there. Elsewhere slices small enough
            // to end inside most dynamic Huffman headers.
            if let left = isal.storedBytesLeft, left > 0 { inCount = min(inCount, left) }
            else { inCount = min(inCount, Self.searchChunk) }
        }
        let target = (out.baseAddress! + outEnd).assumingMemoryBound(to: UInt8.self)
        let step = try isal.inflate(input: reader.bytes, inputCount: inCount, output: target, outputCount: room,
                                    inputOffset: reader.offset)
        reader.consume(step.consumed)
        if searching {
            searched += UInt64(step.consumed)
            isalStats.sliceCalls += 1
        }
        if step.produced > 0 {
            tookOutput(target, step.produced)
            if candidate != nil { checkCandidate(target, step.produced) }
        }
        lastCallFilledOutput = step.produced == room
        if step.ended {
            // isa-l reads whole bytes ahead: give back those of the trailer.
            reader.unconsume(isal.bytesReadPastEnd)
            if let candidate, candidate.streamEnds, candidate.matched == candidate.expected.count {
                commit(candidate.checkpoint)
            } else if candidate != nil {
                reject()
            }
            phase = .trailer
            return
        }
        if step.consumed == 0 && step.produced == 0 && inCount > 0 && room > 0 {
            throw CodecError(kind: .corrupt, message: "inflate makes no progress", compressedOffset: reader.offset)
        }
        if searching && isal.atBlockHeader && isal.outputDrained {
            // The next block's header starts this many bits into the blob.
            let bit = reader.offset * 8 - UInt64(isal.undecodedBits)
            try propose(Checkpoint(compressedOffset: (bit + 7) / 8, uncompressedOffset: produced,
                                   bits: UInt8((8 - bit % 8) % 8), window: currentWindow()))
        }
    }

    /// Starts proving a boundary: zlib's output from it, to compare with isa-l's next bytes.
    private func propose(_ checkpoint: Checkpoint) throws {
        isalStats.candidates += 1
        _ = try reader.fill(atLeast: 64 << 10)   // input for zlib (less at the end of the blob)
        let bits = Int32(checkpoint.bits)
        guard let input = reader.pointer(at: checkpoint.compressedOffset),
              bits == 0 || checkpoint.compressedOffset > 0 else {
            isalStats.rejected += 1
            return
        }
        let checker = try self.checker ?? Inflater(at: checkpoint.compressedOffset)
        self.checker = checker
        var expected = [UInt8](repeating: 0, count: Self.verifyLength)
        let step: CodecStep
        do {
            try checker.reset(at: checkpoint.compressedOffset)
            if bits > 0 {
                guard let before = reader.pointer(at: checkpoint.compressedOffset - 1) else {
                    isalStats.rejected += 1
                    return
                }
                try checker.prime(bits: bits, value: Int32(before[0]) >> (8 - bits), at: checkpoint.compressedOffset - 1)
            }
            if !checkpoint.window.isEmpty { try checker.setDictionary(checkpoint.window, at: checkpoint.compressedOffset) }
            step = try expected.withUnsafeMutableBufferPointer {
                try checker.inflate(input: input, inputCount: Int(reader.readOffset - checkpoint.compressedOffset),
                                    output: $0.baseAddress!, outputCount: $0.count, flush: Z_NO_FLUSH,
                                    inputOffset: checkpoint.compressedOffset)
            }
        } catch {
            isalStats.rejected += 1
            return
        }
        // A boundary where nothing follows (before an empty last block) would be a checkpoint without bytes.
        guard step.produced > 0 else {
            isalStats.rejected += 1
            return
        }
        expected.removeSubrange(step.produced...)
        candidate = Candidate(checkpoint: checkpoint, expected: expected, streamEnds: step.ended)
    }

    /// Compares isa-l's new output with the candidate's zlib output.
    private func checkCandidate(_ bytes: UnsafePointer<UInt8>, _ count: Int) {
        guard var c = candidate else { return }
        let n = min(count, c.expected.count - c.matched)
        let equal = c.expected.withUnsafeBytes { memcmp($0.baseAddress! + c.matched, bytes, n) == 0 }
        guard equal, n == count || !c.streamEnds else {
            reject()
            return
        }
        c.matched += n
        if c.matched == c.expected.count && !c.streamEnds {
            commit(c.checkpoint)
        } else {
            candidate = c
        }
    }

    private func commit(_ checkpoint: Checkpoint) {
        checkpoints.append(checkpoint)
        sinceCheckpoint = produced - checkpoint.uncompressedOffset
        candidate = nil
        searched = 0
    }

    private func reject() {
        candidate = nil
        isalStats.rejected += 1
    }

    /// No boundary found: zlib decodes the member again from its last checkpoint (dropping
    /// what isa-l already gave) and takes over. Called with isa-l's output drained, so isa-l
    /// is no more than its read-ahead (< `BlobReader.history`) past zlib's input.
    private func fallBackToZlib() throws {
        isalStats.fallbacks += 1
        candidate = nil
        searched = 0
        let from = checkpoints.last!   // this member's: it has produced bytes since its start
        let start = from.compressedOffset
        if let inflater { try inflater.reset(at: start) } else { inflater = try Inflater(at: start) }
        let inflater = inflater!
        let chunk = 64 << 10
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * chunk, alignment: 16)
        defer { buffer.deallocate() }
        let input = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<chunk])
        let output = (buffer.baseAddress! + chunk).assumingMemoryBound(to: UInt8.self)
        if from.bits > 0 {
            let one = UnsafeMutableRawBufferPointer(rebasing: input[0..<1])
            guard try reader.reread(into: one, at: start - 1) == 1 else { throw truncated("gzip member") }
            try inflater.prime(bits: Int32(from.bits), value: Int32(input[0]) >> (8 - Int32(from.bits)), at: start - 1)
        }
        if !from.window.isEmpty { try inflater.setDictionary(from.window, at: start) }
        var inPos = start
        var outPos = from.uncompressedOffset
        while outPos < produced {
            let source: UnsafePointer<UInt8>
            let available: Int
            let fromReader = inPos >= reader.offset
            if fromReader {
                if reader.available == 0 {
                    guard try reader.fill(atLeast: 1) else { throw truncated("gzip member") }
                }
                source = UnsafePointer(reader.bytes)
                available = reader.available
            } else {
                let want = Int(min(UInt64(chunk), reader.offset - inPos))
                let n = try reader.reread(into: UnsafeMutableRawBufferPointer(rebasing: input[0..<want]), at: inPos)
                guard n > 0 else { throw truncated("gzip member") }
                source = UnsafePointer(input.baseAddress!.assumingMemoryBound(to: UInt8.self))
                available = n
            }
            var used = 0
            while used < available && outPos < produced {
                let step = try inflater.inflate(input: source + used, inputCount: available - used, output: output,
                                                outputCount: Int(min(UInt64(chunk), produced - outPos)),
                                                flush: Z_NO_FLUSH, inputOffset: inPos + UInt64(used))
                used += step.consumed
                outPos += UInt64(step.produced)
                if step.ended && outPos < produced || step.consumed == 0 && step.produced == 0 {
                    throw CodecError(kind: .corrupt, message: "zlib and isa-l disagree", compressedOffset: inPos + UInt64(used))
                }
            }
            if fromReader { reader.consume(used) }
            inPos += UInt64(used)
        }
        if inPos < reader.offset {
            let back = reader.offset - inPos
            guard back <= UInt64(BlobReader.history) else {
                throw CodecError(kind: .corrupt, message: "zlib and isa-l disagree", compressedOffset: inPos)
            }
            reader.unconsume(Int(back))
        }
        engine = .zlib
        lastCallFilledOutput = true   // zlib may hold output it has not given yet
    }

    private func checkTrailer() throws {
        guard try reader.fill(atLeast: 8) else { throw truncated("gzip trailer") }
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
        phase = .unitStart
    }

    // MARK: zstd

    private func startFrame() throws {
        guard try reader.fill(atLeast: 1) else {
            if unitsStarted == 0 { throw truncated("empty zstd stream") }
            phase = .end
            return
        }
        if unitsStarted > 0 && reader.bytes[0] == 0 { phase = .end; return }
        guard try reader.fill(atLeast: 4) else { throw truncated("zstd frame header") }
        let p = reader.bytes
        let magic = UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
        guard magic == zstdFrameMagic || magic & zstdSkippableMagicMask == zstdSkippableMagic else {
            if unitsStarted > 0 {
                throw CodecError(kind: .trailingGarbage, message: "garbage after the last zstd frame", compressedOffset: reader.offset)
            }
            throw CodecError(kind: .corrupt, message: "not a zstd frame (bad magic)", compressedOffset: reader.offset)
        }
        if let zstd { try zstd.reset(at: reader.offset) } else { zstd = try ZstdDecompressor(at: reader.offset) }
        beginUnit()
    }

    private func zstdStep() throws {
        let zstd = zstd!
        if reader.available == 0 && !lastCallFilledOutput {
            guard try reader.fill(atLeast: 1) else { throw truncated("zstd frame") }
        }
        outEnd = 0
        outDelivered = 0
        let target = out.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let step = try zstd.decompress(input: reader.bytes, inputCount: reader.available,
                                       output: target, outputCount: out.count, inputOffset: reader.offset)
        reader.consume(step.consumed)
        if step.produced > 0 {
            outEnd = step.produced
            produced += UInt64(step.produced)
            commitPendingStart()
        }
        lastCallFilledOutput = step.produced == out.count
        if step.ended {
            phase = .unitStart
            lastCallFilledOutput = false
        } else if step.consumed == 0 && step.produced == 0 && reader.available > 0 {
            throw CodecError(kind: .corrupt, message: "zstd makes no progress", compressedOffset: reader.offset)
        }
    }
}
