import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// A bounded cache of decoded spans shared by all layers of a mount. The span a reader's stream
/// is on (`move`) is kept before others; spans every stream has moved past go first, then the
/// least recently used. The budget covers every span buffer the cache made: cached spans, spans
/// being decoded (by requests or read-ahead) and freed buffers kept for reuse (of these, up to a
/// quarter of `capacity` beyond a full budget), so the daemon's resident size stays bounded
/// whatever the reads. It is `capacity`, plus two spans (a reader's
/// current one and the one read ahead) for each span read at once beyond the first two, at
/// most 3 × `capacity`: with many readers each keeps its span instead of evicting the others'
/// (which made every reader inflate its span again from the checkpoint for each request). A
/// span being decoded by one thread (a request or a read-ahead worker) is waited for by others
/// instead of being decoded twice.
public final class SpanCache: Sendable {
    public struct Key: Hashable, Sendable {
        public var layer: Int
        public var span: Int
        public init(layer: Int, span: Int) { self.layer = layer; self.span = span }
    }
    /// `charge`: what the span counts against the budget: its buffer, or for a span decoded in
    /// part (whose untouched pages take no memory) the bytes decoded so far and its kept decoder;
    /// at least the pages a recycled buffer brought along.
    private struct Slot { var span: DecodedSpan?; var lastUse: UInt64; var passed = false; var charge = 0 }
    private struct Pin { var count: Int; var touched: UInt64 }
    /// A stream whose span has not been read for this long (ns) has ended or paused: its span
    /// no longer counts toward the budget nor is kept before others.
    static let pinLifetime: UInt64 = 1_000_000_000

    private struct State {
        var slots: [Key: Slot] = [:]
        /// Streams on each span (`move`), whether the span is cached or not, and when the span
        /// was last read: a pin counts only while its stream reads (`pinLifetime`).
        var pins: [Key: Pin] = [:]
        /// The largest span decoded so far: what a stream's share of the budget is counted in.
        var largestSpan = 1 << 20
        /// Reads in flight now on each span, and the most spans read at once lately (since
        /// `concurrencySince`, renewed each time it is reached; it decays to the present count
        /// after `pinLifetime`).
        var reading: [Key: Int] = [:]
        var concurrency = 0
        var concurrencySince: UInt64 = 0
        var totalBytes = 0
        var inFlightBytes = 0
        var clock: UInt64 = 0
        var decodedBytes: UInt64 = 0
        var decodedSpans = 0
    }

    private let state = Locked(State())
    public let capacity: Int
    /// How many spans past the current one a sequential reader has decoded ahead (0: none).
    public let readAhead: Int
    /// For statistics: bytes inflated so far.
    public var decodedBytes: UInt64 { state.withLock { $0.decodedBytes } }
    /// For statistics: spans inflated so far.
    public var decodedSpans: Int { state.withLock { $0.decodedSpans } }
    private let prefetcher = SpanPrefetcher()
    private let buffers = SpanBuffers()

    /// `readAhead` defaults to `STRATA_READAHEAD_SPANS` (`RuntimeSettings`), else 1: decoding
    /// one span ahead keeps the second core busy while a reader consumes the current span; more
    /// would only take budget from the other streams' current spans.
    public init(capacity: Int, readAhead: Int = RuntimeSettings.current.readAheadSpans) {
        self.capacity = capacity
        self.readAhead = max(0, readAhead)
    }

    /// The budget now: `capacity`, and two spans more for each span read at once (in the last
    /// second) beyond `sharedReads`, at most 3 × `capacity`. Spans read at once, not streams nor
    /// reads, count readers: one reader moving through several layers (several streams) reads
    /// one place at a time, and the kernel's read-ahead of the file it reads sends several
    /// requests at once into the same span (counted as reads, they grew one reader's budget to
    /// that of several: 53 MB peak RSS after one read-all instead of 42).
    private func budget(_ s: State) -> Int {
        min(capacity + max(0, s.concurrency - Self.sharedReads) * 2 * s.largestSpan, 3 * capacity)
    }

    /// Reads in flight at once that `capacity` alone serves.
    static let sharedReads = 2

    /// A read of a compressed layer starts in span `key` (`LayerData`): a span no other read
    /// is in counts toward the concurrency.
    public func beginRead(_ key: Key) {
        state.withLock { s in
            s.reading[key, default: 0] += 1
            let now = Self.now()
            if s.reading.count >= s.concurrency || now &- s.concurrencySince > Self.pinLifetime {
                s.concurrency = s.reading.count
                s.concurrencySince = now
            }
        }
    }

    public func endRead(_ key: Key) {
        state.withLock { s in
            if let n = s.reading[key], n > 1 { s.reading[key] = n - 1 } else { s.reading[key] = nil }
        }
    }

    private static func isLive(_ pin: Pin, _ now: UInt64) -> Bool { now &- pin.touched < pinLifetime }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    /// The budget for the streams reading now (statistics, tests).
    public var currentBudget: Int { state.withLock { budget($0) } }

    /// A reader's stream is on `key` now (`entered`) and has left `left`: the span it is on is
    /// kept, one no stream is on any more is the first to go.
    public func move(left: Key?, entered: Key?) {
        state.withLock { s in
            if let left, let pin = s.pins[left] {
                if pin.count <= 1 {
                    s.pins[left] = nil
                    if s.slots[left]?.span != nil { s.slots[left]!.passed = true }
                } else {
                    s.pins[left]!.count -= 1
                }
            }
            if let entered {
                s.pins[entered, default: Pin(count: 0, touched: 0)].count += 1
                s.pins[entered]!.touched = Self.now()
                if s.slots[entered]?.span != nil { s.slots[entered]!.passed = false }
            }
        }
    }

    deinit {
        prefetcher.stop()
    }

    /// Freed span buffers kept beyond a full budget, as a share of `capacity`: a quarter (4 MiB
    /// of a mount's 16).
    static let spareShare = 4

    /// What a kept decoder (its span's verified compressed bytes, inflate state) counts against
    /// the budget.
    static let decoderCharge = 384 << 10

    /// What `span` counts against the budget now: at least the resident pages of the recycled
    /// buffer it was given.
    static func charge(_ span: DecodedSpan) -> Int {
        max(span.inherited, span.partial && !span.isComplete ? min(span.bytes.count, span.filled + decoderCharge) : span.bytes.count)
    }

    /// A published span grew (a partial span decoded further): its charge is renewed and room
    /// made for it.
    public func grew(_ key: Key, _ span: DecodedSpan) {
        state.withLock { s in
            guard let slot = s.slots[key], slot.span === span else { return }
            let charge = Self.charge(span)
            s.totalBytes += charge - slot.charge
            s.slots[key]!.charge = charge
            evict(&s, keeping: key)
        }
    }

    /// An empty span to decode into, on a recycled buffer when one is free (`partial`: it will
    /// be decoded in part, see `charge`). Room is made for all of it first: it counts against
    /// the budget from now on, until published.
    public func newSpan(start: UInt64, count: Int, partial: Bool = false) -> DecodedSpan {
        let room = state.withLock { s in
            s.inFlightBytes += count
            evict(&s, keeping: nil)
            return budget(s) - s.totalBytes - s.inFlightBytes
        }
        // A spare may become this span's buffer; some are kept even when the budget is full,
        // where every new span follows an eviction.
        buffers.limit(to: max(room + count, capacity / Self.spareShare))
        let span = DecodedSpan(start: start, count: count, buffers: buffers, partial: partial)
        span.onDropWhileDecoding = { [weak self] bytes in self?.decodeDropped(bytes) }
        return span
    }

    /// Spans decoded into a recycled buffer so far (statistics, tests).
    public var recycledBuffers: Int { buffers.reused }

    /// Bytes of span buffers the cache holds now: cached, being decoded, kept for reuse.
    public var residentBytes: Int {
        state.withLock { s in s.totalBytes + s.inFlightBytes + buffers.spareBytes }
    }

    /// A span made by `newSpan` was dropped before it was published (its decode failed).
    private func decodeDropped(_ bytes: Int) {
        state.withLock { $0.inFlightBytes -= bytes }
    }

    /// The span for `key`, decoding it with `decode` on a miss. A span another thread is
    /// decoding is waited for.
    public func span(_ key: Key, decode: () throws -> DecodedSpan) throws -> DecodedSpan {
        let cached: DecodedSpan? = state.withLock(when: { $0.slots[key].map { $0.span != nil } ?? true }) { s in
            if let span = s.slots[key]?.span {
                s.clock += 1
                s.slots[key]!.lastUse = s.clock
                if s.pins[key] != nil { s.pins[key]!.touched = Self.now() }
                return span
            }
            s.slots[key] = Slot(span: nil, lastUse: 0)
            return nil
        }
        if let cached { return cached }
        return try fill(key, decode)
    }

    /// Queues a background decode of `key` unless it is cached or being decoded. Never blocks on
    /// the decode; the worker skips the job if a request got to the span first.
    public func prefetch(_ key: Key, decode: @escaping @Sendable () throws -> DecodedSpan) {
        if readAhead == 0 || isPresent(key) { return }
        prefetcher.enqueue { [weak self] in
            guard let self, self.claim(key) else { return }
            _ = try? self.fill(key, decode)   // a failure is reported to the request that retries it
        }
    }

    /// Counts bytes inflated into a span after it was published (a partial span extended).
    public func countInflated(_ bytes: Int) {
        state.withLock { $0.decodedBytes += UInt64(bytes) }
    }

    /// Waits until queued read-ahead has finished (tests, statistics).
    public func waitForPrefetches() { prefetcher.waitUntilIdle() }

    private func isPresent(_ key: Key) -> Bool {
        state.withLock { $0.slots[key] != nil }
    }

    /// Reserves `key` for decoding by the caller; false if it is cached or being decoded.
    private func claim(_ key: Key) -> Bool {
        state.withLock { s in
            if s.slots[key] != nil { return false }
            s.slots[key] = Slot(span: nil, lastUse: 0)
            return true
        }
    }

    /// Decodes a claimed slot and publishes the result (or frees the slot on failure).
    private func fill(_ key: Key, _ decode: () throws -> DecodedSpan) throws -> DecodedSpan {
        let result: DecodedSpan
        do {
            result = try decode()
        } catch {
            state.withLock { $0.slots[key] = nil }
            state.broadcast()
            throw error
        }

        state.withLock { s in
            if result.onDropWhileDecoding != nil {
                result.onDropWhileDecoding = nil
                s.inFlightBytes -= result.bytes.count
            }
            s.clock += 1
            let charge = Self.charge(result)
            s.slots[key] = Slot(span: result, lastUse: s.clock, charge: charge)
            s.totalBytes += charge
            s.largestSpan = max(s.largestSpan, result.bytes.count)
            s.decodedBytes += UInt64(result.filled)
            s.decodedSpans += 1
            evict(&s, keeping: key)
        }
        state.broadcast()
        return result
    }

    private func evict(_ s: inout State, keeping kept: Key?) {
        let limit = budget(s)
        let now = Self.now()
        while s.totalBytes + s.inFlightBytes > limit {
            var victim: Key?
            // Unpinned before pinned, passed before the others, then least recently used.
            var best = (pinned: true, passed: false, lastUse: UInt64.max)
            for (k, slot) in s.slots where slot.span != nil && k != kept {
                let pinned = s.pins[k].map { Self.isLive($0, now) } ?? false
                let better: Bool
                if victim == nil { better = true }
                else if pinned != best.pinned { better = !pinned }
                else if slot.passed != best.passed { better = slot.passed }
                else { better = slot.lastUse < best.lastUse }
                if better {
                    victim = k
                    best = (pinned, slot.passed, slot.lastUse)
                }
            }
            guard let v = victim, let slot = s.slots[v], slot.span != nil else { return }
            s.totalBytes -= slot.charge
            s.slots[v] = nil
        }
    }
}
