import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A URLSession made blocking: `start` sends a request and returns an `HTTPExchange` the
/// calling thread waits on (for the headers, then the body, chunk by chunk). Thread-safe: many
/// threads may have exchanges in flight at once (up to `connections` per host on the wire).
/// Redirects to another host lose the Authorization header (URLSession on Linux forwards it).
final class HTTPSession: Sendable {
    // The session keeps its delegate alive, not this object: the owner's deinit ends both.
    private let session: URLSession
    private let delegate: HTTPSessionDelegate
    /// Requests in flight are limited here, not only in URLSession: a request queued inside
    /// URLSession would count its wait as "no progress" and time out; here the clock starts
    /// once it has a connection.
    private let slots: Slots

    init(connections: Int, timeout: Double) {
        slots = Slots(max(1, connections))
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpMaximumConnectionsPerHost = max(1, connections)
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.httpShouldSetCookies = false
        configuration.httpCookieStorage = nil
        // Our own watchdog (HTTPExchange) is the real timeout; these are a backstop.
        configuration.timeoutIntervalForRequest = timeout + 5
        configuration.timeoutIntervalForResource = 7 * 24 * 3600
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1   // callbacks in order: chunks stay in order
        delegate = HTTPSessionDelegate()
        session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: queue)
    }

    deinit {
        session.invalidateAndCancel()
    }

    /// Sends `request` once a connection slot is free (nil at once when `wait` is false and
    /// none is); `limits` bound the wait for each step; `onBytes` sees each piece of body.
    func start(_ request: URLRequest, limits: HTTPExchange.Limits, priority: RegistryPriority = .demand, wait: Bool = true,
               onBytes: (@Sendable (Int) -> Void)? = nil) -> HTTPExchange? {
        guard slots.acquire(priority, wait: wait) else { return nil }
        let task = session.dataTask(with: request)
        let exchange = HTTPExchange(task: task, limits: limits, originalHost: HTTPSession.authority(request.url),
                                    onBytes: onBytes, onEnd: { [slots] in slots.release() })
        delegate.register(exchange, for: task)
        task.resume()
        return exchange
    }

    static func authority(_ url: URL?) -> String {
        guard let url, let host = url.host else { return "" }
        let port = url.port ?? (url.scheme == "https" ? 443 : 80)
        return "\(host.lowercased()):\(port)"
    }
}

/// Connections in use, handed out by priority: `.demand` may take every one and is served
/// before any waiting `.background` request; `.background` leaves one free (when there are
/// two or more) so an on-demand read never waits behind a stream.
final class Slots: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var free: Int
    private let reserved: Int
    private var demandWaiting = 0

    init(_ count: Int) {
        free = count
        reserved = count > 1 ? 1 : 0
    }

    func acquire(_ priority: RegistryPriority, wait: Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        switch priority {
        case .demand:
            demandWaiting += 1
            defer { demandWaiting -= 1 }
            while free == 0 {
                guard wait else { return false }
                condition.wait()
            }
        case .background:
            while free <= reserved || demandWaiting > 0 {
                guard wait else { return false }
                condition.wait()
            }
        }
        free -= 1
        return true
    }

    func release() {
        condition.lock()
        free += 1
        condition.broadcast()
        condition.unlock()
    }
}

/// Routes URLSession's callbacks (on the session's serial queue) to the exchanges.
final class HTTPSessionDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // @unchecked: the table is guarded by its lock.
    private let table = NSLock()
    private var exchanges: [Int: HTTPExchange] = [:]

    func register(_ exchange: HTTPExchange, for task: URLSessionTask) {
        table.lock()
        exchanges[task.taskIdentifier] = exchange
        table.unlock()
    }

    private func exchange(_ task: URLSessionTask) -> HTTPExchange? {
        table.lock()
        defer { table.unlock() }
        return exchanges[task.taskIdentifier]
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        exchange(dataTask)?.received(response: response)
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        exchange(dataTask)?.received(data: data)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didSendBodyData bytesSent: Int64,
                    totalBytesSent: Int64, totalBytesExpectedToSend: Int64) {
        exchange(task)?.sent(Int(bytesSent))
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        table.lock()
        let exchange = exchanges.removeValue(forKey: task.taskIdentifier)
        table.unlock()
        exchange?.completed(error: error)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        guard let exchange = exchange(task) else { completionHandler(nil); return }
        var next = request
        // Credentials belong to the registry: a blob store elsewhere (S3 presigned URL) must
        // not see them, and may reject a second authentication mechanism.
        if HTTPSession.authority(request.url) != exchange.originalHost {
            next.setValue(nil, forHTTPHeaderField: "Authorization")
        }
        guard exchange.redirected(to: next.url) else { completionHandler(nil); return }
        completionHandler(next)
    }
}

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
