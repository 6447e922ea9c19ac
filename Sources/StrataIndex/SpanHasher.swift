import StrataCodec
import StrataHash

/// Computes a blob's span digests (see `IndexFormat`) from the bytes the indexer reads, as they
/// pass (no second read). A span's end is known only once the decoder records the next
/// checkpoint, after its bytes went by: bytes are kept until the decoder is `lag` bytes past
/// them (no checkpoint is recorded that far behind it), then hashed into the current span.
/// Should a checkpoint still come later than that, the spans it touches are hashed again from
/// the blob at the end (`finish`), so the digests are right either way. Each span is a segment
/// of one `BackgroundHasher`, hashed on its thread while a core is free for it
/// (`IndexBuilder.coreIsFree`), in place otherwise.
final class SpanHasher {
    static let lag: UInt64 = 4 << 20

    private let compression: LayerCompression
    /// Bytes [pendingStart, received) not yet hashed, from `pending[head...]`.
    private var pending: [UInt8] = []
    private var head = 0
    private var pendingStart: UInt64 = 0
    private var received: UInt64 = 0
    /// The span being hashed: from `currentStart`, its bytes up to `pendingStart` in `hasher`'s
    /// current segment (span n is segment n).
    private let hasher = BackgroundHasher()
    private var currentStart: UInt64 = 0
    private var currentBroken = false
    private var checkpointsSeen = 1
    private(set) var spans: [SpanDigest] = []
    /// Spans to hash again from the blob.
    private var redo: [Int] = []

    init(compression: LayerCompression) {
        self.compression = compression
    }

    /// The blob's next bytes, in order.
    func take(_ bytes: UnsafeRawBufferPointer) {
        if compression == .none {
            takePlain(bytes)
            return
        }
        pending.append(contentsOf: bytes)
        received += UInt64(bytes.count)
    }

    /// Plain tar: fixed pieces, their ends known in advance.
    private func takePlain(_ bytes: UnsafeRawBufferPointer) {
        var at = 0
        while at < bytes.count {
            let pieceEnd = currentStart + IndexFormat.plainPieceSize
            let n = Int(min(UInt64(bytes.count - at), pieceEnd - received))
            feed(UnsafeRawBufferPointer(rebasing: bytes[at..<(at + n)]))
            at += n
            received += UInt64(n)
            if received == pieceEnd { close(end: received) }
        }
    }

    /// Takes the checkpoints recorded so far, the decoder having consumed the blob up to `consumed`.
    func advance(checkpoints: [Checkpoint], consumed: UInt64) {
        guard compression != .none else { return }
        while checkpointsSeen < checkpoints.count {
            let c = checkpoints[checkpointsSeen]
            checkpointsSeen += 1
            let end = c.compressedOffset
            let start = c.bits > 0 && end > 0 ? end - 1 : end
            if end < pendingStart {
                // Later than `lag` (not expected): both spans are hashed again from the blob.
                currentBroken = true
                close(end: end)
                currentStart = start
                currentBroken = true
                continue
            }
            hash(upTo: end)
            close(end: end)
            // The next span may start one byte back: that byte is still held.
            currentStart = start
            if !stepBack(to: start) { currentBroken = true }
        }
        compact()
        if consumed > Self.lag { hash(upTo: min(consumed - Self.lag, received)) }
    }

    /// The digests of all spans, the blob having been read to its end (`size`). `blob` is read
    /// again only for spans whose bytes were dropped before their end was known.
    func finish(size: UInt64, blob: BlobFile) throws -> [SpanDigest] {
        if compression == .none {
            if received > currentStart { close(end: received) }
        } else {
            hash(upTo: received)
            if size > currentStart || spans.isEmpty { close(end: size) }
        }
        for (i, digest) in hasher.segmentDigests().enumerated() { spans[i].digest = digest }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        for i in redo {
            let range = spans[i].range
            let h = SHA256Hasher()
            var at = range.lowerBound
            while at < range.upperBound {
                let want = Int(min(UInt64(buffer.count), range.upperBound - at))
                let n = try buffer.withUnsafeMutableBytes { try blob.readFully(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<want]), at: at) }
                guard n == want else { throw IndexError("blob ends inside span \(i)") }
                h.update(UnsafeRawBufferPointer(start: buffer.withUnsafeBytes { $0.baseAddress }, count: n))
                at += UInt64(n)
            }
            spans[i].digest = h.finalize()
        }
        return spans
    }

    private func feed(_ bytes: UnsafeRawBufferPointer) {
        if IndexBuilder.coreIsFree { hasher.update(bytes) } else { hasher.updateHere(bytes) }
    }

    /// Hashes pending bytes up to blob offset `offset` into the current span.
    private func hash(upTo offset: UInt64) {
        guard offset > pendingStart else { return }
        let n = Int(offset - pendingStart)
        if !currentBroken {
            pending.withUnsafeBytes { feed(UnsafeRawBufferPointer(rebasing: $0[head..<(head + n)])) }
        }
        head += n
        pendingStart = offset
    }

    /// Makes the current span's bytes start at `offset` (pendingStart or the byte before it,
    /// which `compact` keeps).
    private func stepBack(to offset: UInt64) -> Bool {
        let back = Int(pendingStart - offset)
        guard back <= head else { return false }
        head -= back
        pendingStart = offset
        return true
    }

    /// Frees hashed bytes, keeping the last one (a next span may share it).
    private func compact() {
        if head > (1 << 20) && head > pending.count / 2 {
            pending.removeSubrange(0..<(head - 1))
            head = 1
        }
    }

    private func close(end: UInt64) {
        if currentBroken { redo.append(spans.count) }
        // The digest comes from the hasher at the end (`finish`).
        spans.append(SpanDigest(range: currentStart..<max(end, currentStart), digest: []))
        hasher.endSegment(here: !IndexBuilder.coreIsFree)
        currentBroken = false
        currentStart = end
    }
}
