import Dispatch

/// Runs `body` for 0..<count on all cores and returns the results in order. Each slot is written
/// by exactly one iteration, so the slots need no lock.
public func parallelMap<T>(_ count: Int, _ body: (Int) throws -> T) -> [Result<T, Error>] {
    let slots = UnsafeMutableBufferPointer<Result<T, Error>?>.allocate(capacity: count)
    slots.initialize(repeating: nil)
    defer { slots.deallocate() }
    nonisolated(unsafe) let shared = slots
    withoutActuallyEscaping(body) { body in
        nonisolated(unsafe) let work = body
        DispatchQueue.concurrentPerform(iterations: count) { i in
            shared[i] = Result { try work(i) }
        }
    }
    return slots.map { $0! }
}
