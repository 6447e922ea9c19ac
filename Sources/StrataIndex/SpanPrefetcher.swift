#if canImport(Glibc)
import Glibc
#endif

/// One background thread that runs read-ahead jobs (span decodes) in order. The queue is short
/// and drops its oldest job when full: a reader that has moved on no longer needs it, and a
/// burst of requests must not queue unbounded decode work. The thread starts on the first job.
final class SpanPrefetcher: @unchecked Sendable {
    typealias Job = @Sendable () -> Void

    /// Jobs waiting; a few per layer of an image at most.
    static let queueLimit = 4

    private let state = State()

    /// Shared with the worker thread, which must not keep the owner alive.
    fileprivate final class State: @unchecked Sendable {
        var mutex = pthread_mutex_t()
        var cond = pthread_cond_t()
        var jobs: [Job?] = []   // taken slots are nil, so the array keeps no job alive
        var head = 0
        var running = false      // a job is executing
        var started = false
        var stopped = false

        init() {
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&cond, nil)
            jobs.reserveCapacity(SpanPrefetcher.queueLimit)
        }

        deinit {
            pthread_mutex_destroy(&mutex)
            pthread_cond_destroy(&cond)
        }

        var pending: Int { jobs.count - head }
    }

    func enqueue(_ job: @escaping Job) {
        let s = state
        var dropped: Job?   // released after unlocking: releasing a job may end its owner
        pthread_mutex_lock(&s.mutex)
        if !s.stopped {
            if s.pending >= Self.queueLimit { dropped = s.take() }
            s.jobs.append(job)
            if !s.started {
                s.started = true
                startThread(s)
            }
            pthread_cond_broadcast(&s.cond)
        }
        pthread_mutex_unlock(&s.mutex)
        _ = dropped
    }

    /// Returns once no job is queued or running.
    func waitUntilIdle() {
        let s = state
        pthread_mutex_lock(&s.mutex)
        while s.pending > 0 || s.running { pthread_cond_wait(&s.cond, &s.mutex) }
        pthread_mutex_unlock(&s.mutex)
    }

    /// Drops queued jobs and lets the thread end. Does not join: the last reference to the
    /// owner may be released by a job on the worker thread itself.
    func stop() {
        let s = state
        pthread_mutex_lock(&s.mutex)
        s.stopped = true
        let dropped = s.jobs
        s.jobs = []
        s.head = 0
        pthread_cond_broadcast(&s.cond)
        pthread_mutex_unlock(&s.mutex)
        _ = dropped
    }

    private func startThread(_ s: State) {
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
        } else {
            // No worker: read-ahead is only an optimization, so run without it.
            Unmanaged<State>.fromOpaque(context).release()
            s.stopped = true
        }
    }
}

extension SpanPrefetcher.State {
    /// The oldest queued job; the caller holds the mutex and there is one.
    func take() -> SpanPrefetcher.Job {
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

    /// Waits for the next job; nil once stopped.
    func next() -> SpanPrefetcher.Job? {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while !stopped && pending == 0 { pthread_cond_wait(&cond, &mutex) }
        if stopped { return nil }
        running = true
        return take()
    }

    func finished() {
        pthread_mutex_lock(&mutex)
        running = false
        pthread_cond_broadcast(&cond)   // for waitUntilIdle
        pthread_mutex_unlock(&mutex)
    }
}
