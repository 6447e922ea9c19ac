import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Connections in use, handed out by priority: `.demand` may take every one and is served
/// before any waiting `.background` request; `.background` leaves one free (when there are
/// two or more) so an on-demand read never waits behind a stream.
final class ConnectionSlots: @unchecked Sendable {
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
