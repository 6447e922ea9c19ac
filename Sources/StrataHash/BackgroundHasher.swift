import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of a stream, computed on a thread of its own so that hashing overlaps the caller's
/// work (decoding a layer while indexing it). `update` copies the bytes into one of a few
/// fixed buffers and hands each full one to the thread; it blocks only when every buffer is
/// still waiting to be hashed. Used from one thread; `finalize` (or deinit) ends the thread.
/// The stream may also be cut into segments, each with its own digest (`endSegment`).
public final class BackgroundHasher {
    static let bufferSize = 1 << 20
    static let bufferCount = 4

    /// What the two threads share. The buffers form a ring: the caller fills them in order,
    /// the hashing thread takes them in the same order; a buffer belongs to the thread that
    /// `ring` says has it.
    // @unchecked: each buffer, the hasher and the segment digests are used by one thread at a
    // time, handed over under `ring`'s lock (they pass to the caller when the ring is empty or
    // the thread is joined).
    private final class Shared: @unchecked Sendable {
        let buffers: [UnsafeMutableRawPointer]
        let ring = Locked(Ring())
        var hasher = SHA256Hasher()
        var segments: [[UInt8]] = []

        struct Ring {
            var lengths = Array(repeating: 0, count: BackgroundHasher.bufferCount)
            /// Whether a segment ends with the buffer.
            var ends = Array(repeating: false, count: BackgroundHasher.bufferCount)
            /// The next buffer to hash, and how many full buffers wait from there (the one
            /// being hashed included).
            var head = 0
            var queued = 0
            var ended = false
            var abandoned = false
        }

        init() {
            buffers = (0..<BackgroundHasher.bufferCount).map { _ in
                .allocate(byteCount: BackgroundHasher.bufferSize, alignment: 64)
            }
        }

        deinit {
            buffers.forEach { $0.deallocate() }
        }

        func endSegment() {
            segments.append(hasher.finalize())
            hasher = SHA256Hasher()
        }

        /// The hashing thread's loop.
        func run() {
            while true {
                let next: (index: Int, length: Int, ends: Bool)? = ring.withLock(when: { $0.queued > 0 || $0.ended }) { r in
                    if r.abandoned || r.queued == 0 { return nil }
                    return (r.head, r.lengths[r.head], r.ends[r.head])
                }
                guard let next else { return }
                hasher.update(UnsafeRawBufferPointer(start: buffers[next.index], count: next.length))
                if next.ends { endSegment() }
                ring.withLock { r in
                    r.head = (r.head + 1) % BackgroundHasher.bufferCount
                    r.queued -= 1
                }
                ring.broadcast()
            }
        }
    }

    private let shared = Shared()
    private var thread: pthread_t?
    /// The buffer being filled and how much of it is.
    private var current = 0
    private var filled = 0
    private var digest: [UInt8]?

    public init() {
        let context = Unmanaged.passRetained(shared).toOpaque()
        var id = pthread_t()
        let rc = pthread_create(&id, nil, { context in
            Unmanaged<Shared>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        if rc == 0 {
            thread = id
        } else {
            // No thread to be had: hash on the caller's (same result, no overlap).
            Unmanaged<Shared>.fromOpaque(context).release()
        }
    }

    deinit {
        guard let thread else { return }
        shared.ring.withLock { r in
            r.ended = true
            r.abandoned = true
        }
        shared.ring.broadcast()
        pthread_join(thread, nil)
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        guard thread != nil else { shared.hasher.update(bytes); return }
        var offset = 0
        while offset < bytes.count {
            let n = min(bytes.count - offset, Self.bufferSize - filled)
            (shared.buffers[current] + filled).copyMemory(from: base + offset, byteCount: n)
            filled += n
            offset += n
            if filled == Self.bufferSize { submit() }
        }
    }

    /// Hashes `bytes` on the caller's thread, after everything handed to the thread so far:
    /// for when no core is free to overlap the hashing (the copy into a buffer would then only
    /// add work). Mixes freely with `update`.
    public func updateHere(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        drain()
        shared.hasher.update(bytes)
    }

    /// Ends a segment: its digest, of the bytes given since the previous one ended, is
    /// `segmentDigests()[n]` for the n-th segment. `here`: finalized on the caller's thread (as
    /// `updateHere`).
    public func endSegment(here: Bool = false) {
        if thread == nil || here {
            drain()
            shared.endSegment()
        } else {
            submit(endingSegment: true)
        }
    }

    /// The digests of the segments ended so far, in order. Ends the thread: no more updates.
    public func segmentDigests() -> [[UInt8]] {
        _ = finalize()
        return shared.segments
    }

    /// Waits until the thread has hashed everything handed to it: the hasher is the caller's.
    private func drain() {
        guard thread != nil else { return }
        if filled > 0 { submit() }
        // The thread touches the hasher only while a buffer is queued.
        shared.ring.withLock(when: { $0.queued == 0 }) { _ in }
    }

    /// Hands the current buffer to the thread and waits until the next one is free.
    private func submit(endingSegment: Bool = false) {
        let (current, filled) = (self.current, self.filled)
        shared.ring.withLock { r in
            r.lengths[current] = filled
            r.ends[current] = endingSegment
            r.queued += 1
        }
        shared.ring.broadcast()
        shared.ring.withLock(when: { $0.queued < Self.bufferCount }) { _ in }
        self.current = (current + 1) % Self.bufferCount
        self.filled = 0
    }

    /// The digest of everything given to `update` (since the last segment ended, if any did).
    /// Later calls return the same digest.
    public func finalize() -> [UInt8] {
        if let digest { return digest }
        if let thread {
            if filled > 0 { submit() }
            shared.ring.withLock { $0.ended = true }
            shared.ring.broadcast()
            pthread_join(thread, nil)
            self.thread = nil
        }
        let result = shared.hasher.finalize()
        digest = result
        return result
    }

    public func finalizeHex() -> String { SHA256Hasher.hex(finalize()) }
}
