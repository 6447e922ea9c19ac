#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An errno from a system call, with the call and the path it concerned.
/// Every wrapper in this module turns a failing call into one of these, in one place.
public struct SystemError: Error, CustomStringConvertible, Equatable, Sendable {
    public let code: Int32
    public let operation: String
    public let path: String?

    public init(code: Int32, operation: String, path: String? = nil) {
        self.code = code
        self.operation = operation
        self.path = path
    }

    /// strerror's text for `code`.
    public var message: String { String(cString: strerror(code)) }

    public var description: String {
        if let path { return "\(path): \(operation): \(message)" }
        return "\(operation): \(message)"
    }
}

/// A module's one-line error that may stand on a failed system call: the `SystemError` is kept
/// whole as `cause` (its errno stays available), not flattened into the message. The
/// description is the message, then the errno's text.
public protocol SystemErrorWrapping: Error, CustomStringConvertible {
    var message: String { get }
    var cause: SystemError? { get }
}

extension SystemErrorWrapping {
    public var description: String { cause.map { "\(message): \($0.message)" } ?? message }
}

extension SystemError {
    /// "path: call", what a wrapping error's message says when it has nothing to add.
    public var subject: String { path.map { "\($0): \(operation)" } ?? operation }
}

/// Runs a call that returns -1 and sets errno on failure, retrying on EINTR: the one place
/// errno becomes a `SystemError`.
@inline(__always)
public func retryOnInterrupt<T: BinaryInteger>(_ operation: String, path: @autoclosure () -> String? = nil,
                                               _ body: () -> T) throws(SystemError) -> T {
    while true {
        let result = body()
        if result >= 0 { return result }
        let code = errno
        if code == EINTR { continue }
        throw SystemError(code: code, operation: operation, path: path())
    }
}
