#if canImport(Glibc)
import Glibc
#endif

/// One growable buffer per thread, for a request path that must assemble or read bytes before
/// handing them on (a FUSE reply, a pread of a plain layer). Request threads live as long as the
/// session, so after the first requests no request allocates. Each user keeps its own instance:
/// two users on one thread must not share a buffer.
// @unchecked: `key` is written only in init; each thread reaches only its own buffer.
public final class ThreadScratch: @unchecked Sendable {
    private static let headerSize = 16
    private let minimumCapacity: Int
    private var key = pthread_key_t()

    public init(minimumCapacity: Int = 128 * 1024) {
        self.minimumCapacity = minimumCapacity
        // The destructor frees a thread's buffer when the thread ends.
        pthread_key_create(&key) { free($0) }
    }

    /// A buffer of at least `capacity` bytes, valid until the next call on this thread.
    public func get(_ capacity: Int) -> UnsafeMutableRawPointer {
        if let block = pthread_getspecific(key) {
            if block.load(as: Int.self) >= capacity { return block + Self.headerSize }
            free(block)
        }
        var size = minimumCapacity
        while size < capacity { size *= 2 }
        let block = malloc(size + Self.headerSize)!
        block.storeBytes(of: size, as: Int.self)
        pthread_setspecific(key, block)
        return block + Self.headerSize
    }
}
