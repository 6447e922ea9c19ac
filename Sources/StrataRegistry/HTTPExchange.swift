import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One request in flight, waited on by the thread that started it.
final class HTTPExchange: @unchecked Sendable {
    // @unchecked: every field below is guarded by `condition`.
    struct Limits: Sendable {
        /// Seconds without any byte (or the headers) before the request fails.
        var idle: Double
        /// Bytes per second the whole body must average (after a grace of `idle` seconds).
        var minimumRate: Double
        /// A body larger than this fails (a manifest or token is small).
        var maxBytes: Int
    }

    let task: URLSessionDataTask
    let limits: Limits
    let originalHost: String
    private let condition = NSCondition()
    private var response: HTTPURLResponse?
    private var chunks: [Data] = []
    private var error: Error?
    private var finished = false
    private var lastProgress: Double
    private let started: Double
    private var received = 0
    /// Bytes received plus bytes sent: what the minimum rate is measured on.
    private var transferred = 0
    private var redirects = 0
    /// Redirect targets followed (for statistics and errors).
    private(set) var redirectURLs: [URL] = []
    /// Called (on the session's queue) with the size of each piece of body received.
    let onBytes: (@Sendable (Int) -> Void)?
    /// Called once when the task has ended (completed, failed or cancelled).
    private let onEnd: @Sendable () -> Void

    init(task: URLSessionDataTask, limits: Limits, originalHost: String, onBytes: (@Sendable (Int) -> Void)?,
         onEnd: @escaping @Sendable () -> Void) {
        self.task = task
        self.onBytes = onBytes
        self.onEnd = onEnd
        self.limits = limits
        self.originalHost = originalHost
        started = HTTPExchange.now()
        lastProgress = started
    }

    static func now() -> Double { ProcessInfo.processInfo.systemUptime }

    func received(response: URLResponse) {
        condition.lock()
        self.response = response as? HTTPURLResponse
        lastProgress = HTTPExchange.now()
        condition.broadcast()
        condition.unlock()
    }

    func received(data: Data) {
        condition.lock()
        chunks.append(data)
        received += data.count
        transferred += data.count
        lastProgress = HTTPExchange.now()
        let count = onBytes
        condition.broadcast()
        condition.unlock()
        count?(data.count)
    }

    /// Upload progress counts as progress (a large PUT receives nothing for a while).
    func sent(_ count: Int) {
        condition.lock()
        transferred += count
        lastProgress = HTTPExchange.now()
        condition.unlock()
    }

    func completed(error: Error?) {
        condition.lock()
        self.error = error
        finished = true
        condition.broadcast()
        condition.unlock()
        onEnd()
    }

    func redirected(to url: URL?) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        redirects += 1
        if let url { redirectURLs.append(url) }
        lastProgress = HTTPExchange.now()
        return redirects <= 10
    }

    func cancel() { task.cancel() }

    enum Failure: Error {
        case timeout(String)
        case transport(String)
        case tooLarge(Int)
    }

    /// Waits for the status line and headers.
    func waitForResponse() throws(Failure) -> HTTPURLResponse {
        condition.lock()
        defer { condition.unlock() }
        while response == nil {
            if finished { throw HTTPExchange.failure(error, otherwise: "the connection closed before an answer") }
            try waitLocked(what: "waiting for the answer")
        }
        return response!
    }

    /// The next piece of the body, or nil at its end. A connection that ends early is an error.
    func nextChunk() throws(Failure) -> Data? {
        condition.lock()
        defer { condition.unlock() }
        while chunks.isEmpty {
            if finished {
                if error != nil { throw HTTPExchange.failure(error, otherwise: "transfer failed") }
                return nil
            }
            try waitLocked(what: "reading the body")
        }
        if received > limits.maxBytes { cancelLocked(); throw .tooLarge(received) }
        return chunks.removeFirst()
    }

    /// At most `limit` bytes of the body (an error message); the rest is not downloaded.
    func readPrefix(_ limit: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        while bytes.count < limit, let chunk = try? nextChunk() { bytes.append(contentsOf: chunk) }
        if bytes.count >= limit { cancel() }
        return Array(bytes.prefix(limit))
    }

    /// The whole body.
    func readAll() throws(Failure) -> [UInt8] {
        var bytes: [UInt8] = []
        while let chunk = try nextChunk() { bytes.append(contentsOf: chunk) }
        return bytes
    }

    /// Caller holds the lock: waits a little, or fails when the request is stalled or too slow.
    private func waitLocked(what: String) throws(Failure) {
        let now = HTTPExchange.now()
        if now - lastProgress >= limits.idle {
            cancelLocked()
            throw .timeout("no data for \(HTTPExchange.seconds(limits.idle)) while \(what)")
        }
        let elapsed = now - started
        if limits.minimumRate > 0, elapsed > limits.idle, Double(transferred) < (elapsed - limits.idle) * limits.minimumRate {
            cancelLocked()
            throw .timeout("too slow (\(transferred) bytes in \(HTTPExchange.seconds(elapsed))) while \(what)")
        }
        let wake = min(lastProgress + limits.idle, now + 0.25)
        _ = condition.wait(until: Date(timeIntervalSinceNow: max(0.01, wake - now)))
    }

    private func cancelLocked() {
        // cancel() takes URLSession's own locks and never calls back synchronously.
        task.cancel()
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : String(format: "%.1f s", value)
    }

    static func failure(_ error: Error?, otherwise: String) -> Failure {
        if let urlError = error as? URLError, urlError.code == .timedOut { return .timeout("timed out") }
        return .transport(describe(error) ?? otherwise)
    }

    static func describe(_ error: Error?) -> String? {
        guard let error else { return nil }
        if let urlError = error as? URLError {
            switch urlError.code {
            case .cannotConnectToHost: return "connection refused"
            case .networkConnectionLost: return "connection lost"
            case .timedOut: return "timed out"
            case .cannotFindHost: return "host not found"
            case .cancelled: return "cancelled"
            default: break
            }
        }
        return (error as NSError).localizedDescription
    }
}
