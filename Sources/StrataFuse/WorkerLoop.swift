#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataSystem

/// Several threads serving one session on its one /dev/fuse descriptor, leader and followers:
/// one thread at a time (the leader) reads requests. A request that cannot block (a lookup, a
/// listing, an attribute) the leader answers itself and reads on, so a tree walk stays on one hot
/// thread as with `SingleThreadLoop`. Before a request that may take long (a READ, which may
/// inflate a span; on a writable mount, any request with a reply) it hands
/// the reading to a follower, so requests from other readers are taken and their decodes overlap.
/// A request the leader answers must never wait on another request (a copy-up in progress).
///
/// No cloned descriptors (`FUSE_DEV_IOC_CLONE`): a request read from a clone is aborted when
/// that clone is closed, while one read from the session's descriptor can be re-sent by the
/// kernel to a server that takes the descriptor over (`FUSE_NOTIFY_RESEND`).
///
/// The calling thread only supervises: the wake signal (see `FuseServer`) interrupts its
/// poll, and it then wakes the worker reading the descriptor the same way until every worker has
/// seen the session end.
final class WorkerLoop: @unchecked Sendable {
    // @unchecked: `session` is a C pointer used as libfuse allows from several threads
    // (receive and process on separate buffers); the rest is under `state`'s lock.
    private let session: OpaquePointer
    private let context: FuseContext
    private let writable: Bool
    private let state = Locked(State())

    private struct State {
        var leaderTaken = false
        var ended = false
        var result: Int32 = 0
        var running = 0
        /// Requests handed off and not yet answered (their threads are busy: no spinning then).
        var handedOff = 0
        var supervisor: pthread_t?
    }

    private init(session: OpaquePointer, context: FuseContext) {
        self.session = session
        self.context = context
        writable = context.writable != nil
    }

    static func run(_ session: OpaquePointer, context: FuseContext, threads: Int) -> Int32 {
        // The workers allocate little per request: they share arenas rather than each keeping one.
        MallocArenas.limit(2)
        // Span-sized transient buffers go back to the kernel when freed, not to an arena.
        MallocArenas.mapAllocations(from: 256 << 10)
        let loop = WorkerLoop(session: session, context: context)
        return loop.serve(threads: max(threads, 2))
    }

    private func serve(threads count: Int) -> Int32 {
        state.withLock { $0.supervisor = pthread_self(); $0.running = count }
        // Workers inherit this thread's mask: shutdown signals blocked, the wake signal not.
        let workers = (0..<count).map { _ in Thread.start { [self] in work() } }
        while !state.withLock({ $0.ended }) && fuse_session_exited(session) == 0 {
            _ = poll(nil, 0, 1000)   // the wake signal interrupts it
        }
        state.withLock { $0.ended = true }
        state.broadcast()
        // The reading worker sits in read(2): interrupt it until all have seen the end (a
        // signal landing just before its read would be lost, so repeat).
        fuse_session_exit(session)
        while state.withLock({ $0.running }) > 0 {
            for worker in workers { pthread_kill(worker.id, WakeSignal.number) }
            usleep(5_000)
        }
        for worker in workers { worker.join() }
        fuse_session_reset(session)
        return state.withLock { $0.result }
    }

    private func work() {
        var buffer = fuse_buf()
        defer { free(buffer.mem) }
        defer { finish() }
        // As in SingleThreadLoop; a writable mount's listings go through its own readdir.
        let direct = !context.options.debug && !writable
        let fd = fuse_session_fd(session)
        while becomeLeader() {
            // Spin before the next read (`RequestSpin`) after answering a request of this turn as
            // leader, unless handed-off requests keep other threads busy (their decodes need the
            // CPU). Read-only mounts only: a writable one's walks are not what it is for, and its
            // restarts find nodes again on disk, where a request taken late would cost most.
            var answered = false
            while true {
                if fuse_session_exited(session) != 0 { return end(0) }
                if answered && !writable && state.withLock({ $0.handedOff == 0 }) {
                    RequestSpin.await(fd)
                    if fuse_session_exited(session) != 0 { return end(0) }
                }
                let received = fuse_session_receive_buf(session, &buffer)
                if received == -EINTR { continue }
                if received <= 0 { return end(received) }   // 0: unmounted
                let inMemory = buffer.flags.rawValue & FUSE_BUF_IS_FD.rawValue == 0
                let handOff = !inMemory || mayBlock(buffer.mem, length: Int(received))
                if handOff { resign() }
                if direct, inMemory, let request = buffer.mem,
                   ReaddirPlusReply.answer(request, length: Int(received), fd: fd, context: context) {
                } else {
                    fuse_session_process_buf(session, &buffer)
                }
                if handOff {
                    state.withLock { $0.handedOff -= 1 }
                    break
                }
                answered = true
            }
        }
    }

    /// Waits until no other thread reads the descriptor and takes over; false once ended.
    private func becomeLeader() -> Bool {
        state.withLock(when: { !$0.leaderTaken || $0.ended }) { s in
            if s.ended { return false }
            s.leaderTaken = true
            return true
        }
    }

    /// Hands the reading to a follower before this thread answers a request that may block.
    private func resign() {
        state.withLock { s in
            s.leaderTaken = false
            s.handedOff += 1
        }
        // One follower takes over; waking them all (they all wait for this) cost a wake-up
        // of every idle worker per handed-off request.
        state.signal()
    }

    private func end(_ received: Int32) {
        let supervisor = state.withLock { s -> pthread_t? in
            if !s.ended { s.result = received }
            s.ended = true
            return s.supervisor
        }
        state.broadcast()
        if let supervisor { pthread_kill(supervisor, WakeSignal.number) }
    }

    private func finish() {
        state.withLock { $0.running -= 1 }
    }

    /// Whether the request goes to another thread: a READ always (a span may have to be
    /// inflated); on a writable mount also every request that may change the tree (a copy-up
    /// streams a whole file; others wait for it), write data, list or look up in the upper
    /// directory, or open for writing. What a reader of files never copied up sends besides
    /// READ (OPEN read-only, GETATTR after a read made the atime stale, RELEASE, the
    /// directory's OPENDIR and RELEASEDIR) is answered from the node table at once: handing
    /// each to a follower cost a thread wake-up per request. Opcodes from the kernel's header.
    private func mayBlock(_ request: UnsafeMutableRawPointer?, length: Int) -> Bool {
        guard let request, length >= MemoryLayout<fuse_in_header>.size else { return true }
        let opcode = request.load(as: fuse_in_header.self).opcode
        if opcode == FUSE_READ.rawValue { return true }
        guard writable else { return false }
        switch opcode {
        case FUSE_FORGET.rawValue, FUSE_BATCH_FORGET.rawValue, FUSE_GETATTR.rawValue, FUSE_RELEASE.rawValue,
             FUSE_RELEASEDIR.rawValue, FUSE_OPENDIR.rawValue, FUSE_FLUSH.rawValue, FUSE_ACCESS.rawValue:
            return false
        case FUSE_OPEN.rawValue:
            // Read-only and not truncating: never copies up, never waits for a copy-up.
            let header = MemoryLayout<fuse_in_header>.size
            guard length >= header + MemoryLayout<fuse_open_in>.size else { return true }
            let flags = Int32(bitPattern: (request + header).loadUnaligned(as: fuse_open_in.self).flags)
            return flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0
        default:
            return true
        }
    }
}
