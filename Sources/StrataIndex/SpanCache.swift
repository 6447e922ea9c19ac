#if canImport(Glibc)
import Glibc
#endif

/// One decoded span of a layer's uncompressed stream. Immutable once filled; readers hold a
/// reference while they hand its bytes to the kernel, so eviction never frees bytes in use.
public final class DecodedSpan: @unchecked Sendable {
    public let start: UInt64
    public let bytes: UnsafeMutableRawBufferPointer
    private let mapped: Bool

    /// Spans are mapped straight from the kernel and unmapped on eviction: through malloc, glibc
    /// would serve these multi-MiB buffers from per-thread arenas and keep the freed memory, so
    /// a bounded cache would still grow the daemon's resident size without bound.
    init(start: UInt64, count: Int) {
        self.start = start
        let length = max(count, 1)
        if let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED {
            bytes = UnsafeMutableRawBufferPointer(start: p, count: length)
            mapped = true
        } else {
            bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 64)
            mapped = false
        }
    }

    deinit {
        if mapped { munmap(bytes.baseAddress, bytes.count) } else { bytes.deallocate() }
    }
}

/// A bounded cache of decoded spans shared by all layers of a mount, least recently used out.
/// A span being decoded by one thread is waited for by others instead of being decoded twice.
public final class SpanCache: @unchecked Sendable {
    public struct Key: Hashable { public var layer: Int; public var span: Int }
    private struct Slot { var span: DecodedSpan?; var lastUse: UInt64 }

    private var slots: [Key: Slot] = [:]
    private var totalBytes = 0
    private var clock: UInt64 = 0
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    public let capacity: Int
    public private(set) var decodedBytes: UInt64 = 0   // for statistics: bytes inflated so far

    public init(capacity: Int) {
        self.capacity = capacity
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&cond)
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
        clock += 1
        slots[key] = Slot(span: result, lastUse: clock)
        totalBytes += result.bytes.count
        decodedBytes += UInt64(result.bytes.count)
        evictLocked()
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
        return result
    }

    private func evictLocked() {
        while totalBytes > capacity && slots.count > 1 {
            var victim: Key?
            var oldest = UInt64.max
            for (k, s) in slots where s.span != nil && s.lastUse < oldest {
                oldest = s.lastUse
                victim = k
            }
            guard let v = victim, let span = slots[v]?.span else { return }
            totalBytes -= span.bytes.count
            slots[v] = nil
        }
    }
}
