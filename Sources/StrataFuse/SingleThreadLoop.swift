#if canImport(Glibc)
import Glibc
#endif
import CFuse

/// libfuse's fuse_session_loop, plus READDIRPLUS answered directly (ReaddirPlusReply)
/// when nothing needs libfuse's view of the request: not under `-d`, whose log would miss it.
enum SingleThreadLoop {
    static func run(_ session: OpaquePointer, context: FuseContext) -> Int32 {
        let direct = !context.options.debug
        let fd = fuse_session_fd(session)
        var buffer = fuse_buf()
        defer { free(buffer.mem) }
        var result: Int32 = 0
        // Spin before every read but the first (`RequestSpin`), on a read-only mount (see WorkerLoop).
        let spins = context.writable == nil
        var answered = false
        while fuse_session_exited(session) == 0 {
            // Blocks in read(2); the wake signal interrupts it (EINTR) to look at the exit flag.
            if answered && spins {
                RequestSpin.await(fd)
                if fuse_session_exited(session) != 0 { break }
            }
            answered = true
            let received = fuse_session_receive_buf(session, &buffer)
            if received == -EINTR { continue }
            if received <= 0 {
                result = received  // 0: unmounted (ENODEV), the session has exited
                break
            }
            // A buffer held in a pipe (splice) is left to libfuse; strata does not ask for splice.
            if direct, buffer.flags.rawValue & FUSE_BUF_IS_FD.rawValue == 0, let request = buffer.mem,
               ReaddirPlusReply.answer(request, length: Int(received), fd: fd, context: context) {
                continue
            }
            fuse_session_process_buf(session, &buffer)
        }
        fuse_session_reset(session)
        return result
    }
}
