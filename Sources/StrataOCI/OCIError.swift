/// The one error type of this module. The message is a single line that names the file,
/// digest or reference at fault, so the CLI can print it as is.
public struct OCIError: Error, CustomStringConvertible, Sendable {
    public var message: String   // one line, naming the file, digest or reference at fault
    public init(_ message: String) { self.message = OCIError.oneLine(message) }
    public var description: String { message }

    /// Collapses line breaks: messages may embed text from Foundation or the system.
    static func oneLine(_ text: String) -> String {
        guard text.contains(where: \.isNewline) else { return text }
        return text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: " \t") }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}

extension Substring {
    func trimmingCharacters(in set: String) -> Substring {
        var s = self
        while let f = s.first, set.contains(f) { s.removeFirst() }
        while let l = s.last, set.contains(l) { s.removeLast() }
        return s
    }
}
