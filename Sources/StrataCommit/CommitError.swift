import StrataSystem

/// The one error type of this module: a single line naming the file, path or blob at fault,
/// so the CLI prints it as is.
public struct CommitError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// The failed system call behind it, if one is; its errno text ends the description.
    public var cause: SystemError?
    public init(_ message: String, cause: SystemError? = nil) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.cause = cause
    }
    /// A system call's failure, described as it describes itself (path, call, errno text).
    public init(_ cause: SystemError) {
        self.init("\(cause.path.map { "\($0): " } ?? "")\(cause.operation)", cause: cause)
    }
    public var description: String { cause.map { "\(message): \($0.message)" } ?? message }
}
