import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Connections in use, handed out by priority (`RegistryPriority`): `.demand` may take every
/// one; `.prefetch` and `.background` leave one free (when there are two or more) so an
/// on-demand read never waits behind them. A freed connection goes to the highest priority
/// waiting.
final class ConnectionSlots: @unchecked Sendable {
    // @unchecked: every field is guarded by `condition`.
    private let condition = NSCondition()
    private var free: Int
    private let reserved: Int
    private var waiting: [RegistryPriority: Int] = [:]

    init(_ count: Int) {
        free = count
        reserved = count > 1 ? 1 : 0
    }

    func acquire(_ priority: RegistryPriority, wait: Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        waiting[priority, default: 0] += 1
        defer { waiting[priority, default: 0] -= 1 }
        while !mayTake(priority) {
            guard wait else { return false }
            condition.wait()
        }
        free -= 1
        return true
    }

    /// Whether `priority` may take a connection now: one is free (beyond the reserved one,
    /// below `.demand`) and no higher priority waits for it.
    private func mayTake(_ priority: RegistryPriority) -> Bool {
        guard free > (priority == .demand ? 0 : reserved) else { return false }
        return !waiting.contains { $0.key > priority && $0.value > 0 }
    }

    /// How many callers of `priority` are waiting (for tests).
    func waitingCount(_ priority: RegistryPriority) -> Int {
        condition.lock()
        defer { condition.unlock() }
        return waiting[priority] ?? 0
    }

    func release() {
        condition.lock()
        free += 1
        condition.broadcast()
        condition.unlock()
    }
}
