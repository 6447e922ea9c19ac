import StrataHash
import StrataSystem

/// Hashes a span's compressed bytes on a thread of its own while the caller decodes them, so
/// verification adds little to a decode (isa-l inflates nearly as fast as SHA-256 hashes). The
/// caller still waits for the digest before it publishes the span: nothing unverified is served.
/// A job the worker has not started when its caller asks for it is hashed by the caller instead
/// (no waiting behind another span's hash).
final class SpanVerifier: Sendable {
    static let shared = SpanVerifier()

    // @unchecked: fields are read and written under the verifier's lock; `bytes` is the
    // caller's, alive until `digest(of:)` returns.
    final class Job: @unchecked Sendable {
        let bytes: UnsafeRawBufferPointer
        var taken = false
        var digest: [UInt8]?
        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
    }

    private final class Queue { var jobs: [Job] = []; var started = false }
    private let queue = Locked(Queue())

    /// Starts hashing `bytes` (kept alive and unchanged by the caller until `digest(of:)`).
    func start(_ bytes: UnsafeRawBufferPointer) -> Job {
        let job = Job(bytes)
        let startWorker = queue.withLock { q in
            q.jobs.append(job)
            defer { q.started = true }
            return !q.started
        }
        // Without a worker, callers hash their own jobs (`digest(of:)`).
        if startWorker { detachThread { [self] in run() } }
        queue.broadcast()
        return job
    }

    /// The job's digest: hashed here if the worker has not taken it yet.
    func digest(of job: Job) -> [UInt8] {
        let mine = queue.withLock { q -> Bool in
            if job.taken { return false }
            job.taken = true
            q.jobs.removeAll { $0 === job }
            return true
        }
        if mine { return Self.hash(job.bytes) }
        return queue.withLock(when: { _ in job.digest != nil }) { _ in job.digest! }
    }

    private func run() {
        while true {
            let job = queue.withLock(when: { !$0.jobs.isEmpty }) { q -> Job in
                let job = q.jobs.removeFirst()
                job.taken = true
                return job
            }
            let digest = Self.hash(job.bytes)
            queue.withLock { _ in job.digest = digest }
            queue.broadcast()
        }
    }

    static func hash(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalize()
    }
}
