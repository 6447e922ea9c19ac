internal import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// Unix sequenced-packet sockets (one message per send, boundaries kept) that can carry a
/// descriptor (`SCM_RIGHTS`): how a FUSE mount's /dev/fuse descriptor moves between processes.
/// Every call is thin; errno becomes a `SystemError` here, EINTR is retried.
public enum UnixSocket {
    /// A connected pair (socketpair(2)), both ends close-on-exec.
    public static func pair() throws(SystemError) -> (FileDescriptor, FileDescriptor) {
        var fds: [Int32] = [-1, -1]
        if fds.withUnsafeMutableBufferPointer({ strata_socketpair_seqpacket($0.baseAddress!) }) != 0 {
            throw SystemError(code: errno, operation: "socketpair")
        }
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    /// Sends one message, with `passing` (if any) as its one descriptor (sendmsg(2)).
    public static func send(_ socket: FileDescriptor, _ bytes: [UInt8], passing descriptor: FileDescriptor? = nil) throws(SystemError) {
        let payload = bytes.isEmpty ? [0] : bytes   // a zero-length seqpacket reads as end of file
        let sent = try retryOnInterrupt("sendmsg") {
            payload.withUnsafeBytes { strata_send_with_fd(socket.rawValue, $0.baseAddress, $0.count, descriptor?.rawValue ?? -1) }
        }
        guard sent == payload.count else { throw SystemError(code: EMSGSIZE, operation: "sendmsg") }
    }

    /// Receives one message (recvmsg(2)) and the descriptor it carried. An empty message means
    /// the peer closed its end.
    public static func receive(_ socket: FileDescriptor, capacity: Int = 65536) throws(SystemError) -> (bytes: [UInt8], descriptor: FileDescriptor?) {
        var buffer = [UInt8](repeating: 0, count: capacity)
        var received: Int32 = -1
        let n = try retryOnInterrupt("recvmsg") {
            buffer.withUnsafeMutableBytes { strata_recv_with_fd(socket.rawValue, $0.baseAddress, $0.count, &received) }
        }
        return (Array(buffer[0..<Int(n)]), received >= 0 ? FileDescriptor(rawValue: received) : nil)
    }

    /// A listening socket bound at `path` (a stale socket file there is replaced).
    public static func listen(at path: String) throws(SystemError) -> FileDescriptor {
        _ = unlink(path)
        let fd = strata_unix_listen(path)
        guard fd >= 0 else { throw SystemError(code: errno, operation: "bind", path: path) }
        return FileDescriptor(rawValue: fd)
    }

    /// A connection to the socket at `path`.
    public static func connect(to path: String) throws(SystemError) -> FileDescriptor {
        let fd = try retryOnInterrupt("connect", path: path) { strata_unix_connect(path) }
        return FileDescriptor(rawValue: fd)
    }

    /// The next connection on a listening socket. With `receiveTimeout`, a receive on it
    /// waits at most that many seconds (then fails with EAGAIN).
    public static func accept(_ listener: FileDescriptor, receiveTimeout: Int32? = nil) throws(SystemError) -> FileDescriptor {
        let fd = FileDescriptor(rawValue: try retryOnInterrupt("accept") { strata_accept(listener.rawValue) })
        if let receiveTimeout { _ = strata_set_receive_timeout(fd.rawValue, receiveTimeout) }
        return fd
    }
}

/// Signals read from a descriptor (signalfd(2)), so one poll(2) loop waits for them, for its
/// children and for its sockets at once. The signals must be blocked in every thread.
public struct SignalDescriptor: Sendable {
    public let descriptor: FileDescriptor

    public init(signals: [Int32]) throws(SystemError) {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in signals { sigaddset(&set, signal) }
        let fd = strata_signalfd(&set)
        guard fd >= 0 else { throw SystemError(code: errno, operation: "signalfd") }
        descriptor = FileDescriptor(rawValue: fd)
    }

    /// The number of the next pending signal (blocks if none).
    public func next() throws(SystemError) -> Int32 {
        var record = [UInt8](repeating: 0, count: Int(strata_signalfd_record_size()))
        _ = try retryOnInterrupt("read", path: "signalfd") {
            record.withUnsafeMutableBytes { Glibc.read(descriptor.rawValue, $0.baseAddress, $0.count) }
        }
        return record.withUnsafeBytes { Int32(bitPattern: $0.load(as: UInt32.self)) }  // ssi_signo comes first
    }
}
