import StrataSystem

/// The one error type of this module: a single line naming the file, path or blob at fault,
/// so the CLI prints it as is.
public struct CommitError: SystemErrorWrapping, Sendable {
    public var message: String
    /// The failed system call behind it, if one is; its errno text ends the description.
    public var cause: SystemError?
    public init(_ message: String, cause: SystemError? = nil) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.cause = cause
    }
    /// A system call's failure, described as it describes itself (path, call, errno text).
    public init(_ cause: SystemError) {
        self.init(cause.subject, cause: cause)
    }
    /// `message: error`, keeping a SystemError whole as the cause.
    public init(_ message: String, wrapping error: any Error) {
        if let cause = error as? SystemError { self.init("\(message): \(cause.subject)", cause: cause) } else { self.init("\(message): \(error)") }
    }
}
