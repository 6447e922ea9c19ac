import CZlib
import StrataSystem

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

    private enum Phase { case unitStart, body, trailer, end }

    public convenience init(compression: LayerCompression, file: FileDescriptor, blobSize: UInt64,
                            checkpointSpacing: UInt64 = 4 << 20,
                            onCompressedBytes: @escaping (UnsafeRawBufferPointer) -> Void) {
        let reader = BlobReader(size: blobSize, chunkSize: 1 << 20,
                                source: { buffer, offset in try preadChecked(file, into: buffer, at: offset) },
                                onBytes: onCompressedBytes)
        self.init(compression: compression, reader: reader, checkpointSpacing: checkpointSpacing)
    }

    init(compression: LayerCompression, reader: BlobReader, checkpointSpacing: UInt64) {
        self.compression = compression
        self.reader = reader
        spacing = max(checkpointSpacing, 1)
        out = .allocate(byteCount: compression == .none ? 0 : Self.outputCapacity, alignment: 16)
        if compression == .none {
            checkpoints = [Checkpoint(compressedOffset: 0, uncompressedOffset: 0)]
        }
    }

    deinit { out.deallocate() }

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
            try inflateStep()
        case (.gzip, .trailer):
            try checkTrailer()
        case (.zstd, .unitStart):
            try startFrame()
        case (.zstd, _):
            try zstdStep()
        }
    }

    // MARK: Checkpoints

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
        if let inflater { try inflater.reset(at: reader.offset) } else { inflater = try Inflater(at: reader.offset) }
        unitsStarted += 1
        markUnitStart()
        memberCRC = 0
        memberSize = 0
        sinceCheckpoint = 0
        outEnd = 0
        outDelivered = 0
        lastCallFilledOutput = false
        phase = .body
    }

    private func inflateStep() throws {
        let inflater = inflater!
        // Output left full may still hold pending bytes inside zlib: call again before asking for input.
        if reader.available == 0 && !lastCallFilledOutput {
            guard try reader.fill(atLeast: 1) else { throw truncated("gzip member") }
        }
        if out.count - outEnd < Self.minimumFreeOutput {
            // Everything is handed out; keep only the 32 KiB window a checkpoint may need.
            let keep = min(outEnd, Self.windowSize)
            out.baseAddress!.copyMemory(from: out.baseAddress! + (outEnd - keep), byteCount: keep)
            outEnd = keep
            outDelivered = keep
        }
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
            memberCRC = crc32Update(memberCRC, target, step.produced)
            outEnd += step.produced
            produced += UInt64(step.produced)
            memberSize += UInt64(step.produced)
            sinceCheckpoint += UInt64(step.produced)
            commitPendingStart()
        }
        lastCallFilledOutput = step.produced == room
        if step.ended {
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
        if wantBoundary && dataType & 128 != 0 && dataType & 64 == 0 {
            let keep = min(outEnd, Self.windowSize)
            let window = [UInt8](UnsafeRawBufferPointer(rebasing: out[(outEnd - keep)..<outEnd]))
            checkpoints.append(Checkpoint(compressedOffset: reader.offset, uncompressedOffset: produced,
                                          bits: UInt8(dataType & 7), window: window))
            sinceCheckpoint = 0
        }
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
        unitsStarted += 1
        markUnitStart()
        outEnd = 0
        outDelivered = 0
        lastCallFilledOutput = false
        phase = .body
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
