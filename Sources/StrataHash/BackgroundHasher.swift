#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of a stream, computed on a thread of its own so that hashing overlaps the caller's
/// work (decoding a layer while indexing it). `update` copies the bytes into one of a few
/// fixed buffers and hands each full one to the thread; it blocks only when every buffer is
/// still waiting to be hashed. Used from one thread; `finalize` (or deinit) ends the thread.
public final class BackgroundHasher {
    static let bufferSize = 1 << 20
    static let bufferCount = 4

    /// What the two threads share, under `mutex`. The buffers form a ring: the caller fills
    /// them in order, the hashing thread takes them in the same order.
    private final class Shared: @unchecked Sendable {
        var mutex = pthread_mutex_t()
        var cond = pthread_cond_t()
        let buffers: [UnsafeMutableRawPointer]
        var lengths: [Int]
        /// The next buffer to hash, and how many full buffers wait from there (the one being
        /// hashed included).
        var head = 0
        var queued = 0
        var ended = false
        var abandoned = false
        let hasher = SHA256Hasher()

        init() {
            buffers = (0..<BackgroundHasher.bufferCount).map { _ in
                .allocate(byteCount: BackgroundHasher.bufferSize, alignment: 64)
            }
            lengths = Array(repeating: 0, count: BackgroundHasher.bufferCount)
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&cond, nil)
        }

        deinit {
            buffers.forEach { $0.deallocate() }
            pthread_mutex_destroy(&mutex)
            pthread_cond_destroy(&cond)
        }

        /// The hashing thread's loop.
        func run() {
            pthread_mutex_lock(&mutex)
            while true {
                while queued == 0 && !ended { pthread_cond_wait(&cond, &mutex) }
                if abandoned || queued == 0 { break }
                let i = head
                pthread_mutex_unlock(&mutex)
                hasher.update(UnsafeRawBufferPointer(start: buffers[i], count: lengths[i]))
                pthread_mutex_lock(&mutex)
                head = (head + 1) % buffers.count
                queued -= 1
                pthread_cond_broadcast(&cond)
            }
            pthread_mutex_unlock(&mutex)
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
        pthread_mutex_lock(&shared.mutex)
        shared.ended = true
        shared.abandoned = true
        pthread_cond_broadcast(&shared.cond)
        pthread_mutex_unlock(&shared.mutex)
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

    /// Hands the current buffer to the thread and waits until the next one is free.
    private func submit() {
        pthread_mutex_lock(&shared.mutex)
        shared.lengths[current] = filled
        shared.queued += 1
        pthread_cond_broadcast(&shared.cond)
        while shared.queued == shared.buffers.count { pthread_cond_wait(&shared.cond, &shared.mutex) }
        pthread_mutex_unlock(&shared.mutex)
        current = (current + 1) % shared.buffers.count
        filled = 0
    }

    /// The digest of everything given to `update`. Later calls return the same digest.
    public func finalize() -> [UInt8] {
        if let digest { return digest }
        if let thread {
            if filled > 0 { submit() }
            pthread_mutex_lock(&shared.mutex)
            shared.ended = true
            pthread_cond_broadcast(&shared.cond)
            pthread_mutex_unlock(&shared.mutex)
            pthread_join(thread, nil)
            self.thread = nil
        }
        let result = shared.hasher.finalize()
        digest = result
        return result
    }

    public func finalizeHex() -> String { SHA256Hasher.hex(finalize()) }
}
