import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Background threads (one per CPU, at most `threadLimit`) that run read-ahead jobs (span
/// decodes) in order: several streaming readers get their next spans decoded at once. The queue
/// is short and drops its oldest job when full: a reader that has moved on no longer needs it,
/// and a burst of requests must not queue unbounded decode work. Threads start as jobs come.
final class SpanPrefetcher: Sendable {
    typealias Job = @Sendable () -> Void

    /// Jobs waiting; a few per layer of an image at most.
    static let queueLimit = 8
    static let threadLimit = 4
    /// Worker threads: one per online CPU, within 1...threadLimit.
    static let threadCount = min(max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1), threadLimit)

    private let state = State()

    /// Shared with the worker thread, which must not keep the owner alive.
    fileprivate final class State: Sendable {
        let queue = Locked(Queue())
    }

    fileprivate struct Queue {
        var jobs: [Job?] = []   // taken slots are nil, so the array keeps no job alive
        var head = 0
        var running = 0          // jobs executing
        var started = 0          // threads started
        var stopped = false

        init() { jobs.reserveCapacity(SpanPrefetcher.queueLimit) }

        var pending: Int { jobs.count - head }
    }

    func enqueue(_ job: @escaping Job) {
        let s = state
        // Released after unlocking: releasing a job may end its owner.
        let dropped: Job? = s.queue.withLock { q in
            if q.stopped { return nil }
            let dropped = q.pending >= Self.queueLimit ? q.take() : nil
            q.jobs.append(job)
            // Another thread only when every one is busy and jobs wait.
            if q.started < SpanPrefetcher.threadCount && q.running + q.pending > q.started {
                q.started += 1
                if !startThread(s) {
                    q.started -= 1
                    if q.started == 0 { q.stopped = true }   // no worker at all: no read-ahead
                }
            }
            return dropped
        }
        s.queue.broadcast()
        _ = dropped
    }

    /// Returns once no job is queued or running.
    func waitUntilIdle() {
        state.queue.withLock(when: { $0.pending == 0 && $0.running == 0 }) { _ in }
    }

    /// Drops queued jobs and lets the thread end. Does not join: the last reference to the
    /// owner may be released by a job on the worker thread itself.
    func stop() {
        let dropped = state.queue.withLock { q in
            q.stopped = true
            let dropped = q.jobs
            q.jobs = []
            q.head = 0
            return dropped
        }
        state.queue.broadcast()
        _ = dropped
    }

    /// False when no thread could be started.
    private func startThread(_ s: State) -> Bool {
        let context = Unmanaged.passRetained(s).toOpaque()
        var id = pthread_t()
        let rc = pthread_create(&id, nil, { context in
            let s = Unmanaged<State>.fromOpaque(context!).takeRetainedValue()
            while let job = s.next() {
                job()
                s.finished()
            }
            return nil
        }, context)
        if rc == 0 {
            pthread_detach(id)
            return true
        }
        // No worker: read-ahead is only an optimization, so run without it.
        Unmanaged<State>.fromOpaque(context).release()
        return false
    }
}

extension SpanPrefetcher.Queue {
    /// The oldest queued job; there is one.
    mutating func take() -> SpanPrefetcher.Job {
        let job = jobs[head]!
        jobs[head] = nil
        head += 1
        if head == jobs.count {
            jobs.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 4 * SpanPrefetcher.queueLimit {   // a queue never drained: compact it
            jobs.removeFirst(head)
            head = 0
        }
        return job
    }
}

extension SpanPrefetcher.State {
    /// Waits for the next job; nil once stopped.
    func next() -> SpanPrefetcher.Job? {
        queue.withLock(when: { $0.stopped || $0.pending > 0 }) { q in
            if q.stopped { return nil }
            q.running += 1
            return q.take()
        }
    }

    func finished() {
        queue.withLock { $0.running -= 1 }
        queue.broadcast()   // for waitUntilIdle
    }
}
