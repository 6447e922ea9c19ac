import CFuse
import StrataFS
import StrataSystem

/// The FUSE adapter's `KernelCacheNotifier`: notices written to the session's /dev/fuse
/// descriptor while the session serves. Attribute-only notices take no page lock in the kernel,
/// so a request handler may send one without waiting on another request.
final class KernelCacheInvalidation: KernelCacheNotifier, @unchecked Sendable {
    // @unchecked: the session pointer is used only under `session`'s lock, and cleared (`end`)
    // before the session is destroyed.
    private let session: Locked<OpaquePointer?>

    init(_ session: OpaquePointer) { self.session = Locked(session) }

    func invalidateAttributes(inode: UInt64) {
        session.withLock { session in
            guard let session else { return }
            // ENOENT: the kernel does not know the node (nothing kept); other errors change nothing.
            _ = fuse_lowlevel_notify_inval_inode(session, inode, -1, 0)
        }
    }

    /// No notice after this: the session is about to go.
    func end() { session.withLock { $0 = nil } }
}
