/// The one error type of this module: a single line naming the config field, file or
/// bundle path at fault, so the CLI prints it as is.
public struct BundleError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) {
        self.message = message.split(whereSeparator: \.isNewline).joined(separator: " ")
    }
    public var description: String { message }
}
