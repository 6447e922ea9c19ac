import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import StrataOCI
import StrataSystem

/// A client for one repository of one registry (OCI distribution protocol). Blocking and
/// thread-safe: FUSE threads and background threads share one client, whose URLSession keeps
/// up to `options.connections` connections to the host. Every error is a `RegistryError`.
public final class RegistryClient: Sendable {
    public let host: String
    public let repository: String
    public let options: RegistryOptions
    /// "http" when `tlsVerify` is false, else "https".
    public let scheme: String
    let credentials: RegistryCredentials?
    let http: HTTPSession
    let auth = Locked(AuthState())
    let counters = Locked(RegistryStatistics())
    let tokenFetch = NSLock()

    /// Hosts that answered a ranged GET with 200 (whole blob): remembered for the process.
    static let hostsWithoutRanges = Locked<Set<String>>([])

    public init(host: String, repository: String, options: RegistryOptions) throws {
        guard RegistryReference.isValidHost(host) else {
            throw RegistryError(.invalidInput, host: host, repository: repository, subject: "",
                                message: "\"\(host)\" is not a registry host (HOST or HOST:PORT)")
        }
        guard RegistryReference.isValidRepository(repository) else {
            throw RegistryError(.invalidInput, host: host, repository: repository, subject: "",
                                message: "\"\(repository)\" is not a valid repository name")
        }
        self.host = host
        self.repository = repository
        self.options = options
        scheme = options.tlsVerify ? "https" : "http"
        credentials = try RegistryCredentials.resolve(host: host, repository: repository, options: options)
        http = HTTPSession(connections: options.connections, timeout: options.timeout)
    }

    public convenience init(_ reference: RegistryReference, options: RegistryOptions) throws {
        try self.init(host: reference.host, repository: reference.repository, options: options)
    }

    public var statistics: RegistryStatistics { counters.withLock { $0 } }

    /// Whether this client's host is known to ignore Range (answered a ranged GET with 200).
    public var hostSupportsRanges: Bool { !RegistryClient.hostsWithoutRanges.withLock { $0.contains(host) } }

    var baseURL: String { "\(scheme)://\(host)" }

    func error(_ kind: RegistryError.Kind, _ subject: String, _ message: String, status: Int? = nil) -> RegistryError {
        RegistryError(kind, host: host, repository: repository, subject: subject, message: message, status: status)
    }
}

/// One request as the client describes it, before authentication is added.
struct RegistryRequest {
    var method = "GET"
    /// A path below the registry ("/v2/…", with its query) or an absolute URL (upload locations).
    var target: String
    var headers: [String: String] = [:]
    var body: [UInt8]? = nil
    /// Pushes need the `pull,push` scope.
    var push = false
    /// Names what is asked for in errors: "manifest latest", "blob sha256:…".
    var subject: String
    var maxBytes = 8 << 20
    /// Only if a connection is free now (a read-ahead); else `send` throws `.busy`.
    var optional = false
    var priority = RegistryPriority.demand
}

extension RegistryClient {
    /// Runs `body` again on errors that retrying may cure (5xx, 429, timeouts, dropped or lying
    /// answers), with a doubling delay; the last error is thrown.
    func withRetries<T>(_ body: (_ attempt: Int) throws -> T) throws -> T {
        var attempt = 0
        while true {
            do {
                return try body(attempt)
            } catch let error as RegistryError where error.isRetryable && attempt < options.retries {
                attempt += 1
                counters.withLock { $0.retries += 1 }
                var delay = min(5, options.retryDelay * Double(1 << min(attempt - 1, 10)))
                // A 429's Retry-After (seconds) is honoured, up to 10 s.
                if let after = error.retryAfter { delay = max(delay, min(10, after)) }
                if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            }
        }
    }

    /// Sends `request` (authenticated, re-authenticating once on a 401) and returns the answer
    /// whose status is in `accept`, with the exchange to read its body from. Any other status is
    /// thrown as the error it means. No retries here: callers wrap in `withRetries`.
    /// No `/v2/` ping first: the first request goes out as is (anonymous) and a 401 answering
    /// it carries the challenge the ping would have (one round trip less per process).
    func open(_ request: RegistryRequest, accept: Set<Int>) throws -> (HTTPURLResponse, HTTPExchange) {
        let scope = "repository:\(repository):\(request.push ? "pull,push" : "pull")"
        var reauthenticated = false
        while true {
            let authorization = try authorizationHeader(scope: scope, subject: request.subject)
            let (response, exchange) = try send(request, authorization: authorization)
            let status = response.statusCode
            if accept.contains(status) { return (response, exchange) }
            let body = exchange.readPrefix(64 * 1024)
            if status == 401 && !reauthenticated {
                reauthenticated = true
                try challenged(response, scope: scope, sent: authorization, subject: request.subject)
                continue
            }
            throw statusError(status, response: response, body: body, request: request, sentAuthorization: authorization != nil)
        }
    }

    /// One HTTP exchange, up to its headers.
    func send(_ request: RegistryRequest, authorization: String?) throws -> (HTTPURLResponse, HTTPExchange) {
        let urlText = request.target.hasPrefix("http://") || request.target.hasPrefix("https://")
            ? request.target : baseURL + request.target
        guard let url = URL(string: urlText) else {
            throw error(.invalidInput, request.subject, "cannot make a URL of \(urlText)")
        }
        var urlRequest = URLRequest(url: url)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        if let authorization { urlRequest.setValue(authorization, forHTTPHeaderField: "Authorization") }
        urlRequest.setValue("strata", forHTTPHeaderField: "User-Agent")
        if let body = request.body {
            urlRequest.httpBody = Data(body)
            counters.withLock { $0.bytesSent += UInt64(body.count) }
        }
        let limits = HTTPExchange.Limits(idle: options.timeout, minimumRate: options.minimumBytesPerSecond,
                                         maxBytes: request.maxBytes)
        guard let exchange = http.start(urlRequest, limits: limits, priority: request.priority, wait: !request.optional,
                                        onBytes: { [counters] n in counters.withLock { $0.bytesReceived += UInt64(n) } }) else {
            throw error(.busy, request.subject, "no free connection for a read-ahead")
        }
        counters.withLock { $0.requests += 1 }
        do throws(HTTPExchange.Failure) {
            let response = try exchange.waitForResponse()
            return (response, exchange)
        } catch {
            throw mapped(error, subject: request.subject)
        }
    }

    /// An HTTPExchange failure as a RegistryError.
    func mapped(_ failure: HTTPExchange.Failure, subject: String) -> RegistryError {
        switch failure {
        case .timeout(let why): return error(.timeout, subject, "timeout: \(why)")
        case .transport(let why):
            let hint = scheme == "https" ? "; a plain-HTTP registry needs --tls-verify=false" : ""
            return error(.transport, subject, "\(why) (\(baseURL)\(hint))")
        case .tooLarge(let n): return error(.badLength, subject, "answer larger than expected (\(n) bytes or more)")
        }
    }

    /// Reads the rest of a body, failures mapped.
    func readAll(_ exchange: HTTPExchange, subject: String) throws -> [UInt8] {
        do throws(HTTPExchange.Failure) { return try exchange.readAll() } catch { throw mapped(error, subject: subject) }
    }

    /// What a status means, as the error to throw.
    func statusError(_ status: Int, response: HTTPURLResponse, body: [UInt8], request: RegistryRequest,
                     sentAuthorization: Bool) -> RegistryError {
        let detail = RegistryClient.errorDetail(body).map { " (\($0))" } ?? ""
        let subject = request.subject
        switch status {
        case 401:
            if let credentials, sentAuthorization {
                return error(.unauthorized, subject, "authentication failed: wrong credentials for user \"\(credentials.username)\" (from \(credentials.source)) (401)\(detail)", status: status)
            }
            return error(.unauthorized, subject, "authentication required: the registry answered 401 and no credentials were found (use --creds or --authfile)\(detail)", status: status)
        case 403:
            return error(.denied, subject, "access denied (403): the credentials do not allow this\(detail)", status: status)
        case 404:
            let what = subject.hasPrefix("manifest") ? "manifest unknown" : subject.hasPrefix("blob") ? "blob unknown" : "not found"
            return error(.notFound, subject, "\(what) (404)\(detail)", status: status)
        case 416:
            return error(.badRange, subject, "range not satisfiable (416)\(detail)", status: status)
        case 429:
            var e = error(.rateLimited, subject, "rate limited by the registry (429 too many requests)\(detail)", status: status)
            e.retryAfter = response.value(forHTTPHeaderField: "Retry-After").flatMap { Double($0) }
            return e
        case 500...599:
            return error(.server, subject, "registry error \(status)\(detail)", status: status)
        default:
            return error(.server, subject, "unexpected answer \(status) to \(request.method)\(detail)", status: status)
        }
    }

    /// The first `errors[].code: message` of a distribution error body, or its first line.
    static func errorDetail(_ body: [UInt8]) -> String? {
        guard !body.isEmpty else { return nil }
        if let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
           let errors = json["errors"] as? [[String: Any]], let first = errors.first {
            let code = first["code"] as? String ?? ""
            let message = first["message"] as? String ?? ""
            let text = [code, message].filter { !$0.isEmpty }.joined(separator: ": ")
            return text.isEmpty ? nil : text
        }
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        let line = text.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
        let printable = line.allSatisfy { $0.isASCII && !$0.isNewline }
        return printable && !line.isEmpty ? line : nil
    }

    /// URLComponents leaves '+' alone in queries, but servers read it as a space ("+json").
    static func formEncoded(_ query: String) -> String {
        query.replacingOccurrences(of: "+", with: "%2B")
    }

    /// The blob path of `digest`.
    func blobPath(_ digest: Digest) -> String { "/v2/\(repository)/blobs/\(digest)" }
}
