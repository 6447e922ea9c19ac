#if canImport(Glibc)
import Glibc
#endif

/// A bounded cache of decoded spans shared by all layers of a mount. Spans a sequential reader
/// has moved past go first, then the least recently used. The budget covers every span buffer
/// the cache made: cached spans, spans being decoded (by requests or read-ahead) and freed
/// buffers kept for reuse, so the daemon's resident size stays bounded whatever the reads. A span being decoded by one thread
/// (a request or the read-ahead worker) is waited for by others instead of being decoded twice.
public final class SpanCache: @unchecked Sendable {
    public struct Key: Hashable, Sendable { public var layer: Int; public var span: Int }
    private struct Slot { var span: DecodedSpan?; var lastUse: UInt64; var passed = false }

    private var slots: [Key: Slot] = [:]
    private var totalBytes = 0
    private var inFlightBytes = 0
    private var clock: UInt64 = 0
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    public let capacity: Int
    /// How many spans past the current one a sequential reader has decoded ahead (0: none).
    public let readAhead: Int
    public private(set) var decodedBytes: UInt64 = 0   // for statistics: bytes inflated so far
    public private(set) var decodedSpans = 0            // for statistics: spans inflated so far
    private let prefetcher = SpanPrefetcher()
    private let buffers = SpanBuffers()

    /// `readAhead` defaults to `STRATA_READAHEAD_SPANS`, else 1: decoding one span ahead keeps
    /// the second core busy while a reader consumes the current span; more would only take
    /// budget from the other layers' current spans.
    public init(capacity: Int, readAhead: Int = SpanCache.readAheadFromEnvironment) {
        self.capacity = capacity
        self.readAhead = max(0, readAhead)
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        prefetcher.stop()
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&cond)
    }

    public static var readAheadFromEnvironment: Int {
        guard let text = getenv("STRATA_READAHEAD_SPANS"), let n = Int(String(cString: text)) else { return 1 }
        return n
    }

    /// An empty span to decode into, on a recycled buffer when one is free. Room is made for it
    /// first: it counts against the budget from now on.
    public func newSpan(start: UInt64, count: Int) -> DecodedSpan {
        pthread_mutex_lock(&mutex)
        inFlightBytes += count
        evictLocked(keeping: nil)
        let room = capacity - totalBytes - inFlightBytes
        pthread_mutex_unlock(&mutex)
        buffers.limit(to: room + count)   // a spare may become this span's buffer
        let span = DecodedSpan(start: start, count: count, buffers: buffers)
        span.onDropWhileDecoding = { [weak self] bytes in self?.decodeDropped(bytes) }
        return span
    }

    /// Bytes of span buffers the cache holds now: cached, being decoded, kept for reuse.
    public var residentBytes: Int {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return totalBytes + inFlightBytes + buffers.spareBytes
    }

    /// A span made by `newSpan` was dropped before it was published (its decode failed).
    private func decodeDropped(_ bytes: Int) {
        pthread_mutex_lock(&mutex)
        inFlightBytes -= bytes
        pthread_mutex_unlock(&mutex)
    }

    /// The span for `key`, decoding it with `decode` on a miss.
    public func span(_ key: Key, decode: () throws -> DecodedSpan) throws -> DecodedSpan {
        pthread_mutex_lock(&mutex)
        while true {
            if let slot = slots[key] {
                if let span = slot.span {
                    clock += 1
                    slots[key]!.lastUse = clock
                    pthread_mutex_unlock(&mutex)
                    return span
                }
                pthread_cond_wait(&cond, &mutex)   // another thread is decoding it
                continue
            }
            slots[key] = Slot(span: nil, lastUse: 0)
            break
        }
        pthread_mutex_unlock(&mutex)
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

    /// Marks a span as behind its sequential reader: the first to go when room is needed.
    public func markPassed(_ key: Key) {
        pthread_mutex_lock(&mutex)
        if slots[key]?.span != nil { slots[key]!.passed = true }
        pthread_mutex_unlock(&mutex)
    }

    /// Waits until queued read-ahead has finished (tests, statistics).
    public func waitForPrefetches() { prefetcher.waitUntilIdle() }

    private func isPresent(_ key: Key) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return slots[key] != nil
    }

    /// Reserves `key` for decoding by the caller; false if it is cached or being decoded.
    private func claim(_ key: Key) -> Bool {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        if slots[key] != nil { return false }
        slots[key] = Slot(span: nil, lastUse: 0)
        return true
    }

    /// Decodes a claimed slot and publishes the result (or frees the slot on failure).
    private func fill(_ key: Key, _ decode: () throws -> DecodedSpan) throws -> DecodedSpan {
        let result: DecodedSpan
        do {
            result = try decode()
        } catch {
            pthread_mutex_lock(&mutex)
            slots[key] = nil
            pthread_cond_broadcast(&cond)
            pthread_mutex_unlock(&mutex)
            throw error
        }

        pthread_mutex_lock(&mutex)
        if result.onDropWhileDecoding != nil {
            result.onDropWhileDecoding = nil
            inFlightBytes -= result.bytes.count
        }
        clock += 1
        slots[key] = Slot(span: result, lastUse: clock)
        totalBytes += result.bytes.count
        decodedBytes += UInt64(result.bytes.count)
        decodedSpans += 1
        evictLocked(keeping: key)
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        return result
    }

    private func evictLocked(keeping kept: Key?) {
        while totalBytes + inFlightBytes > capacity {
            var victim: Key?
            var best = (passed: false, lastUse: UInt64.max)
            for (k, s) in slots where s.span != nil && k != kept {
                // Passed spans before the others; least recently used first within each group.
                if victim == nil || (s.passed && !best.passed) || (s.passed == best.passed && s.lastUse < best.lastUse) {
                    victim = k
                    best = (s.passed, s.lastUse)
                }
            }
            guard let v = victim, let span = slots[v]?.span else { return }
            totalBytes -= span.bytes.count
            slots[v] = nil
        }
    }
}
