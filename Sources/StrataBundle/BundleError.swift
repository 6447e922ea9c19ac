import StrataSystem
/// The one error type of this module: a single line naming the config field, file or
/// bundle path at fault, so the CLI prints it as is.
public struct BundleError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    /// The failed system call behind it, if one is; it ends the description (path, call, errno text).
    public var cause: SystemError?
    public init(_ message: String, cause: SystemError? = nil) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        self.cause = cause
    }
    public var description: String { cause.map { "\(message): \($0)" } ?? message }
}
