#if canImport(Glibc)
import Glibc
#endif

/// One growable buffer per libfuse worker thread, for replies that must be assembled
/// (directory listings, xattr name lists, NUL-terminated names). Workers live as long as the
/// session, so after the first requests no request allocates for its reply.
enum ScratchBuffer {
    private static let headerSize = 16
    private static let minimumCapacity = 128 * 1024

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        // The destructor frees a thread's buffer when libfuse ends the worker.
        pthread_key_create(&key) { free($0) }
        return key
    }()

    /// A buffer of at least `capacity` bytes, valid until the next call on this thread.
    static func get(_ capacity: Int) -> UnsafeMutableRawPointer {
        if let block = pthread_getspecific(key) {
            if block.load(as: Int.self) >= capacity { return block + headerSize }
            free(block)
        }
        var size = minimumCapacity
        while size < capacity { size *= 2 }
        let block = malloc(size + headerSize)!
        block.storeBytes(of: size, as: Int.self)
        pthread_setspecific(key, block)
        return block + headerSize
    }
}
