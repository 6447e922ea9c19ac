#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// The signal that interrupts a loop thread's sem_wait or read (see FuseServer). Its disposition is
/// process-wide while servers are per mount, so the no-op handler is installed by the first
/// running server and the previous disposition restored by the last: a server may still send
/// the signal while another has already finished.
enum WakeSignal {
    static let number = SIGUSR2

    private struct Installation {
        var users = 0
        var previous = sigaction()
    }
    private static let installation = Locked(Installation())

    static func acquire() {
        installation.withLock { state in
            state.users += 1
            guard state.users == 1 else { return }
            var action = sigaction()
            action.__sigaction_handler.sa_handler = { _ in }
            sigemptyset(&action.sa_mask)
            action.sa_flags = 0  // no SA_RESTART: sem_wait and read must return EINTR
            sigaction(number, &action, &state.previous)
        }
    }

    static func release() {
        installation.withLock { state in
            state.users -= 1
            guard state.users == 0 else { return }
            sigaction(number, &state.previous, nil)
        }
    }

    /// Lets the calling thread (the loop's) receive the signal.
    static func unblockInCurrentThread() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, number)
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}
