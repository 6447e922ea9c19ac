import StrataSystem

/// The FUSE adapter's per-thread buffer, for replies that must be assembled (directory
/// listings, xattr name lists, NUL-terminated names).
enum ScratchBuffer {
    private static let replies = ThreadScratch()

    /// A buffer of at least `capacity` bytes, valid until the next call on this thread.
    static func get(_ capacity: Int) -> UnsafeMutableRawPointer { replies.get(capacity) }
}
