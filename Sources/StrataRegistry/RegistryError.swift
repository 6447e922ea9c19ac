/// The one error type of the registry client. Its description is one line naming the registry
/// host, the repository and the manifest, blob or reference at fault, and what the answer meant.
public struct RegistryError: Error, CustomStringConvertible, Sendable {
    public enum Kind: String, Sendable, Hashable {
        /// 401: no credentials, or wrong ones.
        case unauthorized
        /// 403: the credentials do not grant this access.
        case denied
        /// 404: manifest, blob or repository unknown.
        case notFound
        /// 429: too many requests.
        case rateLimited
        /// Content whose sha256 is not the digest asked for (or the registry's own header).
        case badDigest
        /// A body longer or shorter than announced or asked for (truncated, wrong Content-Length).
        case badLength
        /// A 206 whose Content-Range is not the range asked for, or a 416.
        case badRange
        /// No progress (or too little) for longer than the timeout.
        case timeout
        /// The host answered a ranged GET with the whole blob (200): it ignores Range.
        case noRangeSupport
        /// Connection refused, reset, DNS, TLS: the request never got an answer.
        case transport
        /// 5xx after the retries, or an answer that is not what the protocol says.
        case server
        /// A reference, credential or option that cannot be used.
        case invalidInput
        /// Internal: an optional read-ahead found no free connection (never thrown to callers).
        case busy
    }

    public var kind: Kind
    /// "HOST" (with port).
    public var host: String
    public var repository: String
    /// What was asked for: "manifest latest", "blob sha256:…", "referrers of sha256:…".
    public var subject: String
    /// What went wrong, one line.
    public var message: String
    /// The HTTP status, when an answer came.
    public var status: Int?
    /// A 429's Retry-After, in seconds.
    var retryAfter: Double?

    public init(_ kind: Kind, host: String, repository: String, subject: String, message: String, status: Int? = nil) {
        self.kind = kind
        self.host = host
        self.repository = repository
        self.subject = subject
        self.message = RegistryError.oneLine(message)
        self.status = status
    }

    public var description: String {
        let place = repository.isEmpty ? "docker://\(host)" : "docker://\(host)/\(repository)"
        return subject.isEmpty ? "\(place): \(message)" : "\(place): \(subject): \(message)"
    }

    static func oneLine(_ text: String) -> String {
        guard text.contains(where: \.isNewline) else { return text }
        return text.split(whereSeparator: \.isNewline).map { $0.trimmingWhitespace() }
            .filter { !$0.isEmpty }.joined(separator: " ")
    }

    /// Whether trying again may help (a lying or flaky server, a dropped connection).
    var isRetryable: Bool {
        switch kind {
        case .timeout, .transport, .server, .badLength, .badRange, .rateLimited: return true
        case .badDigest: return true
        default: return false
        }
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
