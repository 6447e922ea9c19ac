import StrataSystem

/// The one error type of the snapshot store: a single line naming the snapshot key, file or
/// blob at fault, so the CLI prints it as is. `kind` lets callers (and tests) tell the
/// containerd-style failure classes apart without parsing the message.
public struct SnapshotError: SystemErrorWrapping, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The key or name is taken (containerd: AlreadyExists).
        case alreadyExists
        /// No snapshot by that key (containerd: NotFound).
        case notFound
        /// The operation does not fit the snapshot's state: a child exists, the parent is not
        /// committed, a view cannot be committed... (containerd: FailedPrecondition).
        case failedPrecondition
        /// The state on disk contradicts itself (a parent missing, a layer blob gone, a cycle).
        case inconsistent
        /// Anything else: I/O, a failed mount, a bad argument.
        case other
    }

    public var kind: Kind
    public var message: String
    /// The failed system call behind it, if one is; its errno text ends the description.
    public var cause: SystemError?

    public init(_ kind: Kind = .other, _ message: String, cause: SystemError? = nil) {
        self.kind = kind
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.cause = cause
    }

    /// `message: error`, keeping a SystemError whole as the cause.
    public init(_ kind: Kind = .other, _ message: String, wrapping error: any Error) {
        if let cause = error as? SystemError {
            self.init(kind, "\(message): \(cause.subject)", cause: cause)
        } else {
            self.init(kind, "\(message): \(error)")
        }
    }

}
