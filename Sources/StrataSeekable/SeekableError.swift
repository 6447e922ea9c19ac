/// The one error type of this module: a single line naming the layer, entry or field at fault,
/// so the CLI can print it as is.
public struct SeekableError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    public var description: String { message }
}
