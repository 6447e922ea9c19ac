#if canImport(Glibc)
import Glibc
#endif

/// A pthread mutex and condition variable in a heap allocation of their own. pthread objects
/// must never move, and a Swift stored property (`var m = pthread_mutex_t()` passed as `&m`)
/// has no stable address; a pointer from `allocate` does.
// @unchecked: the mutex and condition are only reached through pthread calls.
public final class Lock: @unchecked Sendable {
    @usableFromInline let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    @usableFromInline let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        mutex.initialize(to: pthread_mutex_t())
        condition.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inlinable public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }

    /// Caller holds the lock: releases it until a `broadcast` (or a spurious wakeup), then
    /// holds it again. The caller checks again what it waits for.
    @inlinable public func wait() {
        pthread_cond_wait(condition, mutex)
    }

    /// Wakes every `wait`. With the lock held or not.
    @inlinable public func broadcast() {
        pthread_cond_broadcast(condition)
    }

    /// Wakes one `wait` (when any wakes, all waiters wait for the same thing). With the lock
    /// held or not.
    @inlinable public func signal() {
        pthread_cond_signal(condition)
    }

    /// Caller holds the lock: runs `body` without it, and holds it again afterwards.
    @inlinable public func withLockReleased<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        pthread_mutex_unlock(mutex)
        defer { pthread_mutex_lock(mutex) }
        return try body()
    }
}

/// A value reachable only while its lock is held. `State` need not be Sendable (a table of
/// objects, say): a body must not hand out a way back into it, only copies or Sendable values.
// @unchecked: `state` is only reached with `lock` held.
public final class Locked<State>: @unchecked Sendable {
    @usableFromInline let lock = Lock()
    @usableFromInline var state: State

    public init(_ state: State) { self.state = state }

    @inlinable public func withLock<T, E: Error>(_ body: (inout State) throws(E) -> T) throws(E) -> T {
        try lock.withLock { () throws(E) -> T in try body(&state) }
    }

    /// Waits (the lock released meanwhile) until `ready` holds, then runs `body`; another
    /// thread's `broadcast` makes it look again. The wait is outside `body`'s access to the
    /// state, so no change another thread made while it waited can be missed.
    @inlinable public func withLock<T, E: Error>(when ready: (State) -> Bool, _ body: (inout State) throws(E) -> T) throws(E) -> T {
        try lock.withLock { () throws(E) -> T in
            while !ready(state) { lock.wait() }
            return try body(&state)
        }
    }

    /// Wakes the threads waiting in `withLock(when:)` or `wait`. With the lock held or not.
    @inlinable public func broadcast() { lock.broadcast() }

    /// Wakes one thread waiting in `withLock(when:)`: for waiters that all wait for the same
    /// condition, of which one can go on.
    @inlinable public func signal() { lock.signal() }
}

extension Locked where State: AnyObject {
    // A state that is an object is read through its reference, never from a copy, so these
    // may release the lock inside `withLock`: after them, its fields are read afresh.

    /// Inside `withLock`: waits (the lock released meanwhile) for a `broadcast`. The caller
    /// checks again what it waits for.
    @inlinable public func wait() { lock.wait() }

    /// Inside `withLock`: runs `body` with the lock released, and holds it again afterwards.
    /// Whatever the caller read under the lock may have changed by then.
    @inlinable public func withLockReleased<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLockReleased(body)
    }
}
