#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// The lock a writable strata mount holds on its upper directory for the life of the mount
/// (flock, see OverlayFileSystem). A commit takes it too, so it never reads an upper that a
/// mount is changing under it, and no mount starts on the upper until the commit is done.
public final class UpperLock {
    private let fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Takes the lock on `upper`; nil when `upper` cannot be opened as a directory (the commit
    /// then reports what is wrong with it). A daemon just unmounted holds the lock until it
    /// exits, a moment later: it is awaited for up to `grace` seconds before the upper counts
    /// as mounted.
    public static func acquire(upper: String, grace: Double = 3) throws -> UpperLock? {
        let fd = open(upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        var waited = 0.0
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK || code == EINTR else {
                close(fd)
                throw CommitError("\(SystemError(code: code, operation: "flock", path: upper))")
            }
            guard waited < grace else {
                close(fd)
                throw CommitError("upper \(upper) is in use by a strata mount (it holds the upper's lock): unmount it first, or pass --force (unsafe)")
            }
            usleep(50_000)
            waited += 0.05
        }
        return UpperLock(fd: fd)
    }

    deinit { close(fd) }
}
