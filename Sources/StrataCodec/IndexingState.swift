/// What `IndexingDecoder` and its gzip and zstd indexers share: the blob reader, the output
/// buffer, the checkpoints recorded so far and where decoding stands. One per decoder.
final class IndexingState {
    static let windowSize = 32 << 10
    static let outputCapacity = windowSize + (512 << 10)
    static let minimumFreeOutput = 64 << 10

    enum Phase { case unitStart, body, trailer, end }

    let reader: BlobReader
    /// Output between checkpoints inside a gzip member (≥ 1).
    let spacing: UInt64
    /// Output not yet handed out, preceded (gzip) by up to 32 KiB of the member's earlier output.
    let out: UnsafeMutableRawBufferPointer
    var outEnd = 0
    var outDelivered = 0
    var produced: UInt64 = 0
    var checkpoints: [Checkpoint] = []
    var phase = Phase.unitStart
    var unitsStarted = 0
    var pendingStart: Checkpoint?
    var lastCallFilledOutput = false

    init(reader: BlobReader, spacing: UInt64, outputCapacity: Int) {
        self.reader = reader
        self.spacing = max(spacing, 1)
        out = .allocate(byteCount: outputCapacity, alignment: 16)
    }

    deinit { out.deallocate() }

    /// Input for the next step of `what`: output left full may still hold pending bytes inside
    /// the engine, so then it is called again before asking for input.
    @inline(__always)
    func needInput(_ what: String) throws {
        if reader.available == 0 && !lastCallFilledOutput {
            guard try reader.fill(atLeast: 1) else { throw truncated(what) }
        }
    }

    /// A gzip member's or zstd frame's body starts here: a checkpoint candidate, empty output.
    func beginUnit() {
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
    @inline(__always)
    func commitPendingStart() {
        guard let start = pendingStart else { return }
        pendingStart = nil
        if checkpoints.last?.uncompressedOffset == start.uncompressedOffset {
            checkpoints[checkpoints.count - 1] = start
        } else {
            checkpoints.append(start)
        }
    }

    func truncated(_ what: String) -> CodecError {
        CodecError(kind: .truncated, message: "\(what) truncated", compressedOffset: reader.readOffset)
    }

    /// Called when everything is handed out: keeps only the 32 KiB window a checkpoint may need.
    func compactOutput() {
        if out.count - outEnd < Self.minimumFreeOutput {
            let keep = min(outEnd, Self.windowSize)
            out.baseAddress!.copyMemory(from: out.baseAddress! + (outEnd - keep), byteCount: keep)
            outEnd = keep
            outDelivered = keep
        }
    }

    /// The member's last ≤ 32 KiB of output.
    func currentWindow() -> [UInt8] {
        let keep = min(outEnd, Self.windowSize)
        return [UInt8](UnsafeRawBufferPointer(rebasing: out[(outEnd - keep)..<outEnd]))
    }
}
