import Foundation
@testable import StrataRegistry
import StrataSystem
import Testing

@Suite struct PriorityTests {
    @Test func backgroundLeavesAConnectionForDemand() {
        let slots = ConnectionSlots(3)
        #expect(slots.acquire(.background, wait: false))
        #expect(slots.acquire(.background, wait: false))
        // The last connection is kept for on-demand reads.
        #expect(!slots.acquire(.background, wait: false))
        #expect(slots.acquire(.demand, wait: false))
        #expect(!slots.acquire(.demand, wait: false))
        let single = ConnectionSlots(1)
        #expect(single.acquire(.background, wait: false))   // one connection: nothing to reserve
    }

    @Test func aFreedConnectionGoesToDemandFirst() {
        let slots = ConnectionSlots(2)
        #expect(slots.acquire(.demand, wait: false))
        #expect(slots.acquire(.demand, wait: false))
        let order = Locked<[String]>([])
        let demandDone = DispatchSemaphore(value: 0), backgroundDone = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            _ = slots.acquire(.background, wait: true)
            order.withLock { $0.append("background") }
            backgroundDone.signal()
        }
        Thread.detachNewThread {
            _ = slots.acquire(.demand, wait: true)
            order.withLock { $0.append("demand") }
            demandDone.signal()
        }
        // One connection comes free: background may not take the reserved last one.
        slots.release()
        demandDone.wait()
        #expect(order.withLock { $0 } == ["demand"])
        slots.release()
        slots.release()
        backgroundDone.wait()
        #expect(order.withLock { $0 } == ["demand", "background"])
    }

    @Test func prefetchLeavesAConnectionForDemandAndGoesBeforeBackground() {
        let slots = ConnectionSlots(3)
        #expect(slots.acquire(.prefetch, wait: false))
        #expect(slots.acquire(.prefetch, wait: false))
        #expect(!slots.acquire(.prefetch, wait: false))   // the last one is kept for on-demand reads
        #expect(slots.acquire(.demand, wait: false))
        // All three taken; background asks, then prefetch. Three come free, one at a time: the
        // first is the one kept for demand, the second goes to prefetch although background
        // asked first, the third to background.
        let order = Locked<[String]>([])
        let backgroundDone = DispatchSemaphore(value: 0), prefetchDone = DispatchSemaphore(value: 0)
        func waitUntilWaiting(_ p: RegistryPriority) { while slots.waitingCount(p) == 0 { usleep(1000) } }
        Thread.detachNewThread {
            _ = slots.acquire(.background, wait: true)
            order.withLock { $0.append("background") }
            backgroundDone.signal()
        }
        waitUntilWaiting(.background)
        Thread.detachNewThread {
            _ = slots.acquire(.prefetch, wait: true)
            order.withLock { $0.append("prefetch") }
            prefetchDone.signal()
        }
        waitUntilWaiting(.prefetch)
        slots.release()
        usleep(20_000)
        #expect(order.withLock { $0 }.isEmpty)
        slots.release()
        prefetchDone.wait()
        usleep(20_000)
        #expect(order.withLock { $0 } == ["prefetch"])
        slots.release()
        backgroundDone.wait()
        #expect(order.withLock { $0 } == ["prefetch", "background"])
    }
}
