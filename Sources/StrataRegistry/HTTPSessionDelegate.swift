import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

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

    /// A 401 with `WWW-Authenticate` is the client's to answer (RegistryClient+Auth): without
    /// this, Foundation on Linux holds the task until the timeout looking for a credential.
    func urlSession(_ session: URLSession, task: URLSessionTask, didReceive challenge: URLAuthenticationChallenge,
                    completionHandler: @escaping (URLSession.AuthChallengeDisposition, URLCredential?) -> Void) {
        completionHandler(.rejectProtectionSpace, nil)
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
