#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import CFuse
import StrataFS
import StrataSystem

/// Serves one `FileSystem` at one mountpoint: on one thread, or on several reading the one
/// /dev/fuse descriptor when `maxThreads` > 1 (see `serve`).
///
/// Shutdown (SIGINT, SIGTERM, SIGHUP or `stop()`): on libfuse 3.14 `fuse_session_exit` from
/// another thread does not end the loop (its thread sleeps in sem_wait or read), and a
/// signal handled on a random thread can hang it. So the shutdown signals are blocked in every
/// thread the server starts and one thread waits for them with sigwait. On one it unmounts
/// (the kernel then ends the connection, workers read ENODEV and the loop returns); if the mount
/// is busy, it calls fuse_session_exit and interrupts the loop thread's wait with
/// `WakeSignal`, whose handler does nothing. The loop then stops its workers, and the teardown
/// detaches the mount and closes /dev/fuse, which aborts the connection (open files answer
/// ENOTCONN): a stop always stops.
public final class FuseServer: Sendable {
    public let mountpoint: String
    public let options: FuseMountOptions
    private let fileSystem: any FileSystem
    let state = Locked(State())
    /// Serves a connection another server initialised (FuseServer+Handover.swift): the
    /// mountpoint is not looked at (a stat would wait for this very server).
    let takingOver: Bool

    struct State {
        var started = false
        /// Stopping so that another server takes over: the mount stays.
        var handingOver = false
        var stopRequested = false
        var loopEnded = false
        var signalWaiter: Thread?
        var loopThread: pthread_t?
    }

    public init(fileSystem: any FileSystem, mountpoint: String, options: FuseMountOptions, takingOver: Bool = false) throws {
        self.fileSystem = fileSystem
        self.mountpoint = FuseMount.absolute(mountpoint)
        self.options = options
        self.takingOver = takingOver
        if !takingOver { _ = try checkMountpoint() }  // fail early, before the caller goes to the background
    }

    /// The signals that stop the server.
    public static let shutdownSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Blocks the shutdown signals in the calling thread. A daemon calls this first thing in
    /// main, so that every thread started later (the Swift runtime's too) inherits the mask and
    /// only the server's waiting thread receives them.
    public static func blockShutdownSignals() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Mounts, serves until a shutdown signal or `stop()`, unmounts and returns. `onReady` is
    /// called (from another thread) once the mount answers a stat of its root.
    /// With `handover`, the supervisor at its other end mounts and hands over the descriptor
    /// (FuseServer+Handover.swift); `stopForHandover()` then ends the loop and leaves the mount.
    public func run(handover: HandoverChannel? = nil, onReady: () -> Void) throws {
        let alreadyStarted = state.withLock { state in
            defer { state.started = true }
            return state.started
        }
        precondition(!alreadyStarted, "FuseServer.run called twice")
        let mountpointDevice = takingOver ? 0 : try checkMountpoint()
        let rootInode = (try? fileSystem.getattr(inode: 1).inode) ?? 1

        var signals = Self.signalSet()
        var previousMask = sigset_t()
        pthread_sigmask(SIG_BLOCK, &signals, &previousMask)
        // Teardown: unmount and wake handler (end of the loop block below), then these defers in
        // reverse: session destroyed, signal mask restored, userdata released last (libfuse may
        // call into it until fuse_session_destroy).
        let context = FuseContext(fileSystem: fileSystem, options: options)
        let userdata = Unmanaged.passRetained(context)
        defer { userdata.release() }
        defer { pthread_sigmask(SIG_SETMASK, &previousMask, nil) }

        var args = fuse_args(argc: 0, argv: nil, allocated: 0)
        for argument in options.sessionArguments { fuse_opt_add_arg(&args, argument) }
        var ops = FuseOperations.table(for: context)
        let created = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, userdata.toOpaque())
        fuse_opt_free_args(&args)
        guard let session = created else { throw FuseError(.sessionFailed, mountpoint: mountpoint) }
        defer { fuse_session_destroy(session) }
        // A writable core invalidates what the kernel keeps of nodes it marked stable.
        let notifier = KernelCacheInvalidation(session)
        context.writable?.attach(notifier: notifier)
        defer {
            context.writable?.attach(notifier: nil)
            notifier.end()
        }
        if let handover {
            try attach(session, handover: handover)
        } else if fuse_session_mount(session, mountpoint) != 0 {
            throw FuseError(.mountFailed, mountpoint: mountpoint)
        }

        let handle = SessionHandle(pointer: session)
        let waiter = Thread.start { [self] in waitForShutdown(handle.pointer) }
        state.withLock { state in
            state.signalWaiter = waiter
            // stop() came before the waiter existed: deliver it now.
            if state.stopRequested { pthread_kill(waiter.id, SIGTERM) }
        }

        let readiness = Readiness()
        let loopResult: Int32 = withoutActuallyEscaping(onReady) { onReady in
            // Under a supervisor, it learns it too (it then reports the mount ready, or a restart done).
            readiness.callback = handover.map { channel in { onReady(); try? channel.send(.serving) } } ?? onReady
            let prober = Thread.start { [self] in
                probe(readiness: readiness, rootInode: rootInode, mountpointDevice: mountpointDevice)
            }
            // The loop thread must take the wake signal with a handler (not the default, which
            // would kill the process) and must not block it.
            WakeSignal.acquire()
            WakeSignal.unblockInCurrentThread()
            state.withLock { $0.loopThread = pthread_self() }

            let result = serve(session, context: context)
            RequestStats.flush()

            // The loop has ended (unmounted, or the session failed). Retire the waiter; it
            // must not unmount concurrently with fuse_session_unmount below.
            let waiter = state.withLock { state in
                state.loopEnded = true
                return state.signalWaiter
            }
            if let waiter {
                pthread_kill(waiter.id, SIGTERM)
                waiter.join()
                state.withLock { $0.signalWaiter = nil }
            }
            WakeSignal.release()  // after the waiter, the only sender, has been joined
            // Closes the session's descriptor (ending the connection if still up), so a prober
            // still blocked in stat returns, then unmounts if nothing did yet.
            fuse_session_unmount(session)
            prober.join()
            readiness.callback = nil
            return result
        }

        if readiness.failure != 0 {
            throw FuseError(.serverFailed(readiness.failure), mountpoint: mountpoint)
        }
        if loopResult != 0 && !state.withLock({ $0.stopRequested }) {
            throw FuseError(.serverFailed(loopResult < 0 ? -loopResult : EINTR), mountpoint: mountpoint)
        }
    }

    /// Serves the session until it ends: on the calling thread alone (`maxThreads` 1), else
    /// with `WorkerLoop`'s threads, all on the session's one /dev/fuse descriptor.
    ///
    /// One thread answers every request that cannot block: the caller (`find`, `ls -l`, a
    /// package manager) waits on each, so nothing runs in parallel anyway, and the same hot
    /// thread answering each time is cheaper than a pool whose idle workers are woken in turn,
    /// each often on the other CPU. Reads, which may inflate a span, are handed to more threads
    /// so that several readers' decodes overlap. Both loops block in read(2), which the wake
    /// signal interrupts.
    private func serve(_ session: OpaquePointer, context: FuseContext) -> Int32 {
        let threads = options.maxThreads
        if threads <= 1 { return SingleThreadLoop.run(session, context: context) }
        return WorkerLoop.run(session, context: context, threads: threads)
    }

    /// Unmounts and makes `run` return: the same path as SIGTERM. Safe from any thread, also
    /// before `run` has mounted (run then returns right after mounting).
    public func stop() {
        state.withLock { state in
            state.stopRequested = true
            if let waiter = state.signalWaiter, !state.loopEnded { pthread_kill(waiter.id, SIGTERM) }
        }
    }

    // MARK: - Start-up

    /// Returns the st_dev of the mountpoint directory (before mounting).
    private func checkMountpoint() throws -> UInt64 {
        let st: stat
        do { st = try FileDescriptor.currentDirectory.stat(at: mountpoint, flags: 0) } catch {
            switch error.code {
            case ENOENT: throw FuseError(.mountpointMissing, mountpoint: mountpoint)
            case ENOTCONN: throw FuseError(.staleMount, mountpoint: mountpoint)
            case let code: throw FuseError(.inaccessible(code), mountpoint: mountpoint)
            }
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw FuseError(.notADirectory, mountpoint: mountpoint) }
        return UInt64(st.st_dev)
    }

    /// libfuse's session is used from the waiter thread only for fuse_session_exit.
    // @unchecked: a C pointer; fuse_session_exit may be called from any thread.
    private struct SessionHandle: @unchecked Sendable { let pointer: OpaquePointer }

    // @unchecked: written by the prober thread; `run` reads it only after joining that thread.
    private final class Readiness: @unchecked Sendable {
        var callback: (() -> Void)?
        var succeeded = false
        var failure: Int32 = 0
    }

    /// Stats the mountpoint until the root of the new mount answers (the stat blocks until the
    /// loop has answered INIT and GETATTR), then reports ready. A mount that never answers is
    /// stopped, so that `run` returns and throws instead of serving nobody.
    private func probe(readiness: Readiness, rootInode: UInt64, mountpointDevice: UInt64) {
        if takingOver {
            // Already mounted and answering: a stat now would only wait for this server.
            readiness.succeeded = true
            readiness.callback?()
            return
        }
        var failure = ETIMEDOUT
        for _ in 0..<1000 {
            let st: stat
            do { st = try FileDescriptor.currentDirectory.stat(at: mountpoint, flags: 0) } catch {
                failure = error.code
                break
            }
            if UInt64(st.st_dev) != mountpointDevice && UInt64(st.st_ino) == rootInode {
                setReadAhead(device: UInt64(st.st_dev))
                readiness.succeeded = true
                readiness.callback?()
                return
            }
            if state.withLock({ $0.loopEnded || $0.stopRequested }) { return }
            usleep(10_000)
        }
        // A failure caused by a stop already under way is no failure.
        if state.withLock({ $0.stopRequested }) { return }
        readiness.failure = failure
        stop()
    }

    /// The kernel only lets INIT lower read-ahead; raise it on the connection's backing device
    /// so that sequential reads arrive in large requests. Best effort (needs root).
    private func setReadAhead(device: UInt64) {
        guard let bytes = options.readAhead else { return }
        let path = "/sys/class/bdi/\(DeviceNumber.major(device)):\(DeviceNumber.minor(device))/read_ahead_kb"
        guard let fd = try? FileDescriptor.open(path, O_WRONLY) else { return }
        try? fd.writeAll(Array("\(max(bytes / 1024, 4))".utf8))
        fd.close()
    }

    // MARK: - Shutdown

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in shutdownSignals { sigaddset(&set, signal) }
        return set
    }

    /// Runs on its own thread with the shutdown signals blocked: waits for one, unmounts, and
    /// makes sure the loop ends. Also woken by the run thread when the loop ended by itself.
    private func waitForShutdown(_ session: OpaquePointer) {
        var set = Self.signalSet()
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        let proceed = state.withLock { state in
            if state.loopEnded { return false }
            state.stopRequested = true
            return true
        }
        guard proceed else { return }
        // Gracefully first: while the workers still serve, an unmount ends the loop by itself.
        if !state.withLock({ $0.handingOver }) { _ = unmountNow() }
        fuse_session_exit(session)
        // Repeat the wake-up: a signal that lands between the loop's check of the exit flag
        // and its sem_wait would be lost.
        while true {
            let (ended, loopThread) = state.withLock { ($0.loopEnded, $0.loopThread) }
            if ended { return }
            if let loopThread { pthread_kill(loopThread, WakeSignal.number) }
            usleep(20_000)
        }
    }

    /// A non-lazy unmount, without closing the session's descriptor (libfuse's unmount closes
    /// it while workers may still read it). false when busy: the teardown then detaches.
    private func unmountNow() -> Bool {
        if geteuid() == 0 { return (try? FileSystemMount.unmount(mountpoint)) != nil }
        return FuseMount.run("/usr/bin/fusermount3", ["-u", mountpoint]) == 0
    }
}
