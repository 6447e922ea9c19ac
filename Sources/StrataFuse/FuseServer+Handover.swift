#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataFS
import StrataSystem

/// Serving a mount a supervisor holds (`FuseSupervisor`), so that the connection outlives
/// this process.
///
/// The supervisor owns the /dev/fuse descriptor; the kernel keeps the connection while any
/// process holds it. This server gets a copy over its socket and gives it to libfuse as the
/// mountpoint `/dev/fd/N` (libfuse then mounts nothing and unmounts nothing). The first
/// server answers the kernel's INIT itself and sends its body to the supervisor; a later one
/// replays that body to libfuse (whose session answers everything before INIT with EIO; the
/// kernel sends INIT once) and then asks the kernel to send again every request the previous
/// server had read but not answered (FUSE_NOTIFY_RESEND, kernel 6.9).
extension FuseServer {
    /// Says hello, waits for the descriptor and attaches it to `session`.
    func attach(_ session: OpaquePointer, handover: HandoverChannel) throws {
        let supervisorGone = FuseError(.serverFailed(EPIPE), mountpoint: mountpoint)
        try handover.hello(options: options)
        guard let (message, received) = try handover.receive() else { throw supervisorGone }
        guard case .grant(let initRequest) = message, let fuse = received else {
            received?.close()
            throw supervisorGone
        }
        guard fuse_session_mount(session, "/dev/fd/\(fuse.rawValue)") == 0 else {
            fuse.close()
            throw FuseError(.mountFailed, mountpoint: mountpoint)
        }
        if initRequest.isEmpty {
            try answerInit(session, handover: handover)
        } else {
            initRequest.withUnsafeBytes { strata_replay_init(session, $0.baseAddress, $0.count) }
            let resend = strata_notify_resend(fuse.rawValue)
            if resend != 0 {
                // An older kernel: what the previous server held stays unanswered.
                Log.warn("\(mountpoint): FUSE_NOTIFY_RESEND failed (\(String(cString: strerror(-resend)))); requests the previous server had read are lost")
            }
        }
        // The supervisor's word from now on: `quit` (another server takes over), or nothing
        // (it is gone: keep serving, the mount outlives it while this process holds it).
        let listener = Thread.start { [self] in
            while let (message, descriptor) = try? handover.receive() {
                descriptor?.close()
                if message == .quit { stopForHandover(); return }
            }
            Log.warn("\(mountpoint): the mount's supervisor is gone; serving on without it")
        }
        pthread_detach(listener.id)
    }

    /// Reads the kernel's INIT (the first request of a new connection), gives its body to the
    /// supervisor for the servers after this one, and lets libfuse answer it.
    private func answerInit(_ session: OpaquePointer, handover: HandoverChannel) throws {
        var buffer = fuse_buf()
        defer { free(buffer.mem) }
        var received: Int32
        repeat { received = fuse_session_receive_buf(session, &buffer) } while received == -EINTR
        let header = MemoryLayout<fuse_in_header>.size
        guard received > Int32(header), let request = buffer.mem,
              request.load(as: fuse_in_header.self).opcode == FUSE_INIT.rawValue else {
            throw FuseError(.serverFailed(received < 0 ? -received : EPROTO), mountpoint: mountpoint)
        }
        let body = Array(UnsafeRawBufferPointer(start: request + header, count: Int(received) - header))
        let flags2 = body.count >= 20 ? UInt64(body.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 16, as: UInt32.self) }) : 0
        if flags2 << 32 & STRATA_FUSE_HAS_RESEND == 0 {
            Log.warn("\(mountpoint): the kernel does not offer FUSE_HAS_RESEND (Linux 6.9): a server that dies loses the requests it had read")
        }
        try handover.send(.initRequest(body))
        fuse_session_process_buf(session, &buffer)
    }

    /// `run` returned because another server took over (the mount is still there).
    public var handedOver: Bool { state.withLock { $0.handingOver } }

    /// Ends the loop after the requests being answered, without unmounting: the supervisor
    /// hands the mount to another server. Safe from any thread.
    public func stopForHandover() {
        state.withLock { $0.handingOver = true }
        stop()
    }
}
