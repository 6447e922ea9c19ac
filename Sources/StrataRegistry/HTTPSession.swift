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
    private let slots: ConnectionSlots

    init(connections: Int, timeout: Double) {
        slots = ConnectionSlots(max(1, connections))
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
