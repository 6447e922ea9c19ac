import StrataCodec
import StrataSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One decoded span of a layer's uncompressed stream, possibly decoded only in part: bytes
/// `[0, filled)` are decoded and never change again; the rest is decoded when a read needs it
/// (`LayerData`), by the decoder kept in `continuation`, under `extending`. Readers hold a
/// reference while they hand its bytes to the kernel, so eviction never frees bytes in use.
// @unchecked: bytes are written only past `filled`, under `extending` (or by the one decoder
// before the span is published), and published by the release store of `filled`;
// `onDropWhileDecoding` is set and cleared under the span cache's lock; `continuation` is
// reached only under `extending`.
public final class DecodedSpan: @unchecked Sendable {
    public let start: UInt64
    public let bytes: UnsafeMutableRawBufferPointer
    /// The span's length in the stream (`bytes` may be longer, never shorter, but for an empty span).
    public let count: Int
    private let filledCount = Atomic<Int>(0)
    /// Serialises decoding more of the span.
    let extending = Lock()
    /// The decoder that stopped at `filled`, to go on from there (nil once complete, or after
    /// an error: the next extension starts again at the span's checkpoint).
    var continuation: SpanDecoder?
    /// The verified compressed bytes `continuation` reads (held as long as it is).
    var source: VerifiedSpan?
    private let lease: SpanBuffers.Spare?
    private let buffers: SpanBuffers?
    /// Resident bytes of the recycled mapping the span was given (0: a fresh one): it counts
    /// against the budget whatever the span decodes into it.
    var inherited: Int { lease?.resident ?? 0 }
    /// How far a decode has written into the span (a decode may fail before `filled` moves).
    private let written = Atomic<Int>(0)
    /// Set while the span is being decoded: the cache counts it against its budget until it is
    /// published, or until it is dropped because the decode failed.
    var onDropWhileDecoding: ((Int) -> Void)?

    /// Bytes decoded from `start` on; they never change again.
    public var filled: Int { filledCount.load(ordering: .acquiring) }
    public var isComplete: Bool { filled >= count }

    /// Publishes bytes decoded up to `n` (more than before).
    func setFilled(_ n: Int) { filledCount.store(n, ordering: .releasing) }

    /// Made to be decoded in part: on a fresh mapping, pages not yet decoded into take no
    /// memory; on a recycled one, the pages it had do (`inherited`).
    let partial: Bool

    init(start: UInt64, count: Int, buffers: SpanBuffers? = nil, partial: Bool = false) {
        self.start = start
        self.count = count
        self.buffers = buffers
        let length = max(count, 1)
        self.partial = partial
        lease = buffers.map { $0.lease(length) } ?? SpanBuffers.fresh(length)
        if let lease {
            bytes = UnsafeMutableRawBufferPointer(start: lease.mapping.baseAddress, count: length)
        } else {
            bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        }
    }

    /// A decode is about to write the span's bytes up to `end`.
    func willWrite(upTo end: Int) {
        _ = written.max(min(end, bytes.count), ordering: .relaxed)
    }

    deinit {
        onDropWhileDecoding?(bytes.count)
        guard let lease else { return bytes.deallocate() }
        // A span decoded whole wrote all of it; a partial one up to where its decodes went.
        let touched = partial ? written.load(ordering: .relaxed) : bytes.count
        if let buffers { buffers.giveBack(lease, written: touched) } else { SpanBuffers.unmap(lease) }
    }
}

/// Span buffers are mapped straight from the kernel and unmapped when done: through malloc,
/// glibc would serve these multi-MiB buffers from per-thread arenas and keep the freed memory,
/// so a bounded cache would still grow the daemon's resident size without bound. A few freed
/// mappings are kept for the next decodes, which then write to pages already present instead
/// of faulting in and zeroing a fresh mapping page by page: a program's first start decodes
/// a hundred spans in part, and the faults were a quarter of the daemon's CPU. Kept mappings
/// are counted by their resident pages, not their size (a span of 1 MiB and a bit sits on a
/// 2 MiB mapping).
final class SpanBuffers: Sendable {
    struct Spare { var mapping: UnsafeMutableRawBufferPointer; var resident: Int }
    /// Mappings kept for reuse; their resident pages are counted against `budget`.
    let spareLimit: Int
    /// Mapping sizes are rounded up to this, so that spans of slightly different sizes share them.
    static let granule = 1 << 20

    private struct Spares {
        var kept: [Spare] = []
        /// Resident bytes of the kept mappings.
        var bytes = 0
        /// What the owner leaves to spares; kept mappings beyond it are unmapped.
        var budget = Int.max
        /// Mappings handed out again (statistics, tests).
        var reused = 0
    }
    private let spares: Locked<Spares>

    init(spareLimit: Int = 4, budget: Int = .max) {
        self.spareLimit = spareLimit
        var s = Spares()
        s.kept.reserveCapacity(spareLimit)
        s.budget = budget
        spares = Locked(s)
    }

    deinit {
        spares.withLock { s in for spare in s.kept { Self.unmap(spare) } }
    }

    /// `bytes` rounded up to whole pages.
    static func pages(_ bytes: Int) -> Int { (bytes + 4095) & ~4095 }

    /// A kept mapping of at least `length` bytes (`take`), else a fresh one; nil if the kernel
    /// refuses. Handed back with `giveBack`.
    func lease(_ length: Int) -> Spare? { take(length) ?? Self.fresh(length) }

    /// A fresh mapping of at least `length` bytes, no page of it resident yet.
    static func fresh(_ length: Int) -> Spare? { map(length).map { Spare(mapping: $0, resident: 0) } }

    /// Keeps a leased mapping for reuse, `written` bytes of it now resident too, or unmaps it.
    func giveBack(_ lease: Spare, written: Int) {
        if !give(lease.mapping, resident: max(lease.resident, Self.pages(written))) { Self.unmap(lease) }
    }

    static func unmap(_ spare: Spare) { munmap(spare.mapping.baseAddress, spare.mapping.count) }

    /// A new mapping of at least `length` bytes, nil if the kernel refuses.
    static func map(_ length: Int) -> UnsafeMutableRawBufferPointer? {
        let rounded = (length + granule - 1) / granule * granule
        guard let p = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else { return nil }
        return UnsafeMutableRawBufferPointer(start: p, count: rounded)
    }

    /// A spare mapping of at least `length` bytes: the one with the most resident pages, which
    /// a decode then writes without faults. (Taking the one with the fewest for a span decoded
    /// in part, to keep its charge low, left most of a first start's pages to fault in.)
    func take(_ length: Int) -> Spare? {
        spares.withLock { s in
            var best: Int?
            for (i, spare) in s.kept.enumerated() where spare.mapping.count >= length {
                if let b = best, spare.resident <= s.kept[b].resident { continue }
                best = i
            }
            guard let i = best else { return nil }
            s.reused += 1
            s.bytes -= s.kept[i].resident
            return s.kept.remove(at: i)
        }
    }

    /// Keeps a mapping with `resident` bytes of pages for reuse; false when enough are kept
    /// (the caller unmaps it).
    func give(_ mapping: UnsafeMutableRawBufferPointer, resident: Int) -> Bool {
        spares.withLock { s in
            guard s.kept.count < spareLimit, s.bytes + resident <= s.budget else { return false }
            s.kept.append(Spare(mapping: mapping, resident: resident))
            s.bytes += resident
            return true
        }
    }

    /// Resident bytes of the kept mappings.
    var spareBytes: Int { spares.withLock { $0.bytes } }

    /// How many mappings were handed out again.
    var reused: Int { spares.withLock { $0.reused } }

    /// Sets the room left for spares, unmapping kept mappings that no longer fit.
    func limit(to budget: Int) {
        let dropped = spares.withLock { s in
            s.budget = max(0, budget)
            var dropped: [Spare] = []
            while s.bytes > s.budget, let last = s.kept.popLast() {
                s.bytes -= last.resident
                dropped.append(last)
            }
            return dropped
        }
        for spare in dropped { Self.unmap(spare) }
    }
}

/// A span's compressed bytes read into memory of their own (the thread scratch would be reused
/// by the next read), so that a span decoded in part goes on decoding from the bytes that were
/// verified, never from the blob file again. Their memory is recycled like span buffers
/// (`buffers`): a span's compressed bytes are half a MiB, which malloc mapped fresh and faulted
/// in page by page for every span decoded.
// @unchecked: written once, before it is shared; only read afterwards.
final class VerifiedSpan: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    /// The bytes as the blob's range at `offset`, for a decoder.
    let blob: BlobFile
    private let lease: SpanBuffers.Spare?

    /// Freed compressed spans kept for the next: 4 MiB at most.
    static let buffers = SpanBuffers(spareLimit: 4, budget: 4 << 20)

    init(count: Int, at offset: UInt64) {
        let length = max(count, 1)
        lease = Self.buffers.lease(length)
        bytes = lease.map { UnsafeMutableRawBufferPointer(start: $0.mapping.baseAddress, count: length) }
            ?? .allocate(byteCount: length, alignment: 16)
        blob = BlobFile(bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<count]), at: offset)
    }

    deinit {
        guard let lease else { return bytes.deallocate() }
        Self.buffers.giveBack(lease, written: bytes.count)
    }
}
