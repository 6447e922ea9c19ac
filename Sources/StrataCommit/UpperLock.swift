#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// The lock a writable strata mount holds on its upper directory for the life of the mount
/// (flock, see OverlayFileSystem). A commit takes it too, so it never reads an upper that a
/// mount is changing under it, and no mount starts on the upper until the commit is done.
public final class UpperLock {
    private let fd: FileDescriptor

    private init(fd: FileDescriptor) { self.fd = fd }

    /// Takes the lock on `upper`; nil when `upper` cannot be opened as a directory (the commit
    /// then reports what is wrong with it). A daemon just unmounted holds the lock until it
    /// exits, a moment later: it is awaited for up to `grace` seconds before the upper counts
    /// as mounted.
    public static func acquire(upper: String, grace: Double = 3) throws -> UpperLock? {
        guard let fd = try? FileDescriptor.openat(.currentDirectory, upper, O_RDONLY | O_DIRECTORY) else { return nil }
        var waited = 0.0
        while true {
            do throws(SystemError) {
                try fd.lock(LOCK_EX | LOCK_NB)
                break
            } catch where error.code == EWOULDBLOCK {
            } catch {
                fd.close()
                throw CommitError(SystemError(code: error.code, operation: "flock", path: upper))
            }
            guard waited < grace else {
                fd.close()
                throw CommitError("upper \(upper) is in use by a strata mount (it holds the upper's lock): unmount it first, or pass --force (unsafe)")
            }
            usleep(50_000)
            waited += 0.05
        }
        return UpperLock(fd: fd)
    }

    deinit { fd.close() }
}
