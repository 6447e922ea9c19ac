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
    private let mapping: UnsafeMutableRawBufferPointer?
    private let buffers: SpanBuffers?
    /// Set while the span is being decoded: the cache counts it against its budget until it is
    /// published, or until it is dropped because the decode failed.
    var onDropWhileDecoding: ((Int) -> Void)?

    /// Bytes decoded from `start` on; they never change again.
    public var filled: Int { filledCount.load(ordering: .acquiring) }
    public var isComplete: Bool { filled >= count }

    /// Publishes bytes decoded up to `n` (more than before).
    func setFilled(_ n: Int) { filledCount.store(n, ordering: .releasing) }

    /// Made to be decoded in part, on a mapping of its own (not a recycled one): pages not yet
    /// decoded into take no memory.
    let partial: Bool

    init(start: UInt64, count: Int, buffers: SpanBuffers? = nil, partial: Bool = false) {
        self.start = start
        self.count = count
        self.buffers = buffers
        let length = max(count, 1)
        self.partial = partial
        let spare = partial ? nil : buffers?.take(length)
        if let mapping = spare ?? SpanBuffers.map(length) {
            self.mapping = mapping
            bytes = UnsafeMutableRawBufferPointer(start: mapping.baseAddress, count: length)
        } else {
            mapping = nil
            bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
        }
    }

    deinit {
        onDropWhileDecoding?(bytes.count)
        if let mapping {
            if buffers?.give(mapping) != true { munmap(mapping.baseAddress, mapping.count) }
        } else {
            bytes.deallocate()
        }
    }
}

/// Span buffers are mapped straight from the kernel and unmapped when done: through malloc,
/// glibc would serve these multi-MiB buffers from per-thread arenas and keep the freed memory,
/// so a bounded cache would still grow the daemon's resident size without bound. A couple of
/// freed mappings are kept for the next decodes, which then write to pages already present
/// instead of faulting in and zeroing a fresh mapping page by page (a tenth of a read pass's CPU).
final class SpanBuffers: Sendable {
    /// Mappings kept for reuse; each is resident memory beyond the cache's budget.
    static let spareLimit = 2
    /// Mapping sizes are rounded up to this, so that spans of slightly different sizes share them.
    static let granule = 1 << 20

    private struct Spares {
        var mappings: [UnsafeMutableRawBufferPointer] = []
        /// Resident bytes of the kept mappings.
        var bytes = 0
        /// What the cache leaves to spares; kept mappings beyond it are unmapped.
        var budget = Int.max
    }
    private let spares: Locked<Spares>

    init() {
        var s = Spares()
        s.mappings.reserveCapacity(Self.spareLimit)
        spares = Locked(s)
    }

    deinit {
        spares.withLock { s in for mapping in s.mappings { munmap(mapping.baseAddress, mapping.count) } }
    }

    /// A new mapping of at least `length` bytes, nil if the kernel refuses.
    static func map(_ length: Int) -> UnsafeMutableRawBufferPointer? {
        let rounded = (length + granule - 1) / granule * granule
        guard let p = mmap(nil, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != MAP_FAILED else { return nil }
        return UnsafeMutableRawBufferPointer(start: p, count: rounded)
    }

    /// A spare mapping of at least `length` bytes.
    func take(_ length: Int) -> UnsafeMutableRawBufferPointer? {
        spares.withLock { s in
            guard let i = s.mappings.firstIndex(where: { $0.count >= length }) else { return nil }
            s.bytes -= s.mappings[i].count
            return s.mappings.remove(at: i)
        }
    }

    /// Keeps a mapping for reuse; false when enough are kept (the caller unmaps it).
    func give(_ mapping: UnsafeMutableRawBufferPointer) -> Bool {
        spares.withLock { s in
            guard s.mappings.count < Self.spareLimit, s.bytes + mapping.count <= s.budget else { return false }
            s.mappings.append(mapping)
            s.bytes += mapping.count
            return true
        }
    }

    /// Resident bytes of the kept mappings.
    var spareBytes: Int { spares.withLock { $0.bytes } }

    /// Sets the room left for spares, unmapping kept mappings that no longer fit.
    func limit(to budget: Int) {
        let dropped = spares.withLock { s in
            s.budget = max(0, budget)
            var dropped: [UnsafeMutableRawBufferPointer] = []
            while s.bytes > s.budget, let last = s.mappings.popLast() {
                s.bytes -= last.count
                dropped.append(last)
            }
            return dropped
        }
        for mapping in dropped { munmap(mapping.baseAddress, mapping.count) }
    }
}

/// A span's compressed bytes read into memory of their own (the thread scratch would be reused
/// by the next read), so that a span decoded in part goes on decoding from the bytes that were
/// verified, never from the blob file again.
// @unchecked: written once, before it is shared; only read afterwards.
final class VerifiedSpan: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer
    /// The bytes as the blob's range at `offset`, for a decoder.
    let blob: BlobFile

    init(count: Int, at offset: UInt64) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 16)
        blob = BlobFile(bytes: UnsafeRawBufferPointer(rebasing: bytes[0..<count]), at: offset)
    }

    deinit { bytes.deallocate() }
}
