import StrataSystem

/// What a mount's supervisor and its serving process say to each other over their socket
/// pair (one seqpacket message each, a tag byte first).
///
/// server → supervisor: `hello` (ready to serve; the mount's libfuse arguments), `failed`
/// (start-up failed: why), `initRequest` (the body of the connection's INIT, first server
/// only), `serving`. supervisor → server: `grant` (the /dev/fuse descriptor attached, and the
/// INIT body to replay if the connection is already initialised), `quit` (stop reading,
/// answer what was read, exit: another server takes over).
enum HandoverMessage: Equatable {
    case hello(arguments: [String])
    case failed(String)
    case initRequest([UInt8])
    case serving
    case grant(initRequest: [UInt8])
    case quit

    var encoded: [UInt8] {
        switch self {
        case .hello(let arguments): return [UInt8(ascii: "H")] + Array(arguments.joined(separator: "\0").utf8)
        case .failed(let message): return [UInt8(ascii: "E")] + Array(message.utf8)
        case .initRequest(let bytes): return [UInt8(ascii: "I")] + bytes
        case .serving: return [UInt8(ascii: "S")]
        case .grant(let bytes): return [UInt8(ascii: "F")] + bytes
        case .quit: return [UInt8(ascii: "Q")]
        }
    }

    /// nil for an empty message (the peer closed) or one this version does not know.
    init?(_ bytes: [UInt8]) {
        guard let tag = bytes.first else { return nil }
        let body = Array(bytes.dropFirst())
        switch tag {
        case UInt8(ascii: "H"):
            self = .hello(arguments: String(decoding: body, as: UTF8.self).split(separator: "\0", omittingEmptySubsequences: false).map(String.init))
        case UInt8(ascii: "E"): self = .failed(String(decoding: body, as: UTF8.self))
        case UInt8(ascii: "I"): self = .initRequest(body)
        case UInt8(ascii: "S"): self = .serving
        case UInt8(ascii: "F"): self = .grant(initRequest: body)
        case UInt8(ascii: "Q"): self = .quit
        default: return nil
        }
    }
}

/// The serving process's end of the socket to its supervisor.
public final class HandoverChannel: Sendable {
    public let socket: FileDescriptor
    private let greeted = Locked(false)

    public init(socket: FileDescriptor) { self.socket = socket }

    /// Tells the supervisor this server is ready to take the mount (and how to mount it, if
    /// it is the first). Once; `FuseServer.run` says it if the caller has not. A server taking
    /// a writable mount over says it before opening the upper directory, whose lock the
    /// previous server holds until the supervisor's `quit` ends it.
    public func hello(options: FuseMountOptions) throws(SystemError) {
        let first = greeted.withLock { greeted in
            defer { greeted = true }
            return !greeted
        }
        if first { try send(.hello(arguments: options.sessionArguments)) }
    }

    /// Start-up failed: the supervisor logs `message` and reports it (to `strata mount`, or
    /// as the reason of a crash loop).
    public func reportFailure(_ message: String) {
        try? UnixSocket.send(socket, HandoverMessage.failed(message).encoded)
    }

    func send(_ message: HandoverMessage) throws(SystemError) {
        try UnixSocket.send(socket, message.encoded)
    }

    /// The next message; nil when the supervisor is gone.
    func receive() throws(SystemError) -> (HandoverMessage, FileDescriptor?)? {
        let (bytes, descriptor) = try UnixSocket.receive(socket)
        guard let message = HandoverMessage(bytes) else {
            descriptor?.close()
            return nil
        }
        return (message, descriptor)
    }
}
