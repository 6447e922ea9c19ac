#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A loop about to block in read(2) on /dev/fuse polls the descriptor for a short while
/// first, after it answered a request itself. A caller walking a tree (find, ls -R, a package
/// manager) sends its next request soon after each answer: a server thread asleep in read(2)
/// must then be woken, which on a virtual machine costs the caller an inter-processor interrupt
/// and the server a wake-up from idle, on every request. The thread spins only while requests
/// keep coming: a whole walk keeps it busy, an idle mount costs nothing.
enum RequestSpin {
    /// `STRATA_FUSE_SPIN_US` (see `RuntimeSettings`).
    static let budget = Duration.microseconds(RuntimeSettings.current.fuseSpinMicroseconds)

    /// Whether `fd` became readable (or failed: an unmount) within `budget`; false at once for
    /// a zero budget, and when a signal interrupts the poll (the loop looks at its exit flag).
    @discardableResult
    static func await(_ fd: Int32, budget: Duration = budget) -> Bool {
        guard budget > .zero else { return false }
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = ContinuousClock.now + budget
        repeat {
            let ready = poll(&p, 1, 0)
            if ready != 0 { return ready > 0 }
        } while ContinuousClock.now < deadline
        return false
    }
}
