/// The one error type of this module: a single line naming the file, path or blob at fault,
/// so the CLI prints it as is.
public struct CommitError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    public var description: String { message }
}
