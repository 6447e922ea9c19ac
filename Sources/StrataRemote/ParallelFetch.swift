import Foundation
import StrataSystem

/// Work a mount waits for that mostly waits on the network (registry requests, layers
/// streaming), run a few at a time instead of one after another (`RegistryClient` is thread-safe).
enum ParallelFetch {
    /// `body` for every item, up to `limit` at once on threads of their own; the results in
    /// item order. Every item runs (so each one's resources can be cleaned up by the caller),
    /// and each result is kept, success or failure.
    static func results<Item: Sendable, Value: Sendable>(_ items: [Item], limit: Int = 4,
                                                         _ body: @escaping @Sendable (Item) throws -> Value) -> [Result<Value, any Error>] {
        if items.count <= 1 { return items.map { item in Result { try body(item) } } }
        let state = Locked<(next: Int, results: [Int: Result<Value, any Error>])>((0, [:]))
        let done = DispatchSemaphore(value: 0)
        let workers = min(max(1, limit), items.count)
        for _ in 0..<workers {
            Thread.detachNewThread {
                while true {
                    let i = state.withLock { s -> Int in
                        defer { s.next += 1 }
                        return s.next
                    }
                    guard i < items.count else { break }
                    let result = Result { try body(items[i]) }
                    state.withLock { $0.results[i] = result }
                }
                done.signal()
            }
        }
        for _ in 0..<workers { done.wait() }
        let results = state.withLock { $0.results }
        return items.indices.map { results[$0]! }
    }

    /// `body` for every item as `results` runs it; the values in item order, or the error of
    /// the first item (in item order) that failed.
    static func all<Item: Sendable, Value: Sendable>(_ items: [Item], limit: Int = 4,
                                                     _ body: @escaping @Sendable (Item) throws -> Value) throws -> [Value] {
        try results(items, limit: limit, body).map { try $0.get() }
    }
}
