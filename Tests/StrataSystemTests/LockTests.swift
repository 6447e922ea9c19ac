import Dispatch
import Testing
@testable import StrataSystem

@Suite struct LockTests {
    @Test func lockedStateTakesEveryChangeFromManyThreads() {
        let counter = Locked(0)
        DispatchQueue.concurrentPerform(iterations: 8) { _ in
            for _ in 0..<10_000 { counter.withLock { $0 += 1 } }
        }
        #expect(counter.withLock { $0 } == 80_000)
    }

    @Test func withLockWhenWaitsForTheConditionAnotherThreadMakes() {
        let queue = Locked<[Int]>([])
        let done = DispatchGroup()
        DispatchQueue.global().async(group: done) {
            for i in 1...100 {
                queue.withLock { $0.append(i) }
                queue.broadcast()
            }
        }
        var taken: [Int] = []
        while taken.count < 100 {
            taken += queue.withLock(when: { !$0.isEmpty }) { q in
                defer { q.removeAll() }
                return q
            }
        }
        done.wait()
        #expect(taken == Array(1...100))
    }

    final class Box { var value = 0 }

    @Test func anObjectStateCanReleaseTheLockInsideWithLock() {
        let state = Locked(Box())
        let started = DispatchGroup()
        started.enter()
        let finished = DispatchGroup()
        // The first thread releases the lock and waits; the second gets in meanwhile, changes
        // the box and wakes it. Without the release, the second would never get the lock.
        DispatchQueue.global().async(group: finished) {
            state.withLock { box in
                started.leave()
                while box.value == 0 { state.wait() }
                box.value += 10
            }
        }
        started.wait()
        state.withLock { box in box.value = 1 }
        state.broadcast()
        finished.wait()
        let inside = state.withLock { box in state.withLockReleased { 7 } + box.value }
        #expect(inside == 18)
    }

    @Test func lockRunsTheBodyAndReturnsItsValue() throws {
        struct Failure: Error {}
        let lock = Lock()
        #expect(lock.withLock { 42 } == 42)
        #expect(throws: Failure.self) { try lock.withLock { () throws(Failure) in throw Failure() } }
        #expect(lock.withLock { 1 } == 1)   // a throwing body left it unlocked
    }
}

@Suite struct RuntimeSettingsTests {
    @Test func unsetVariablesGiveTheDefaults() {
        let s = RuntimeSettings(environment: { _ in nil })
        #expect(s.readAheadSpans == 1)
        #expect(s.gzipInflateWithIsal)
        #expect(s.fuseStatsPath == nil)
        #expect(s.fuseSpinMicroseconds == 400)
        #expect(s.copyUpDelayMilliseconds == 0)
        #expect(s.copyUpGate == nil)
        #expect(s.indexGate == nil)
        #expect(s.commitCrashAfter == nil)
        #expect(s.snapshotCrashAfter == nil)
    }

    @Test func eachVariableSetsItsField() {
        let environment = [
            "STRATA_READAHEAD_SPANS": "3", "STRATA_GZIP_INFLATE": "zlib", "STRATA_FUSE_STATS": "/tmp/stats",
            "STRATA_TEST_COPYUP_DELAY_MS": "25", "STRATA_TEST_COPYUP_GATE": "/tmp/gate",
            "STRATA_TEST_INDEX_GATE": "/tmp/index-gate", "STRATA_COMMIT_CRASH_AFTER": "blob",
            "STRATA_SNAPSHOT_CRASH_AFTER": "metadata", "STRATA_FUSE_SPIN_US": "0",
        ]
        let s = RuntimeSettings(environment: { environment[$0] })
        #expect(s.readAheadSpans == 3)
        #expect(!s.gzipInflateWithIsal)
        #expect(s.fuseStatsPath == "/tmp/stats")
        #expect(s.fuseSpinMicroseconds == 0)
        #expect(s.copyUpDelayMilliseconds == 25)
        #expect(s.copyUpGate == "/tmp/gate")
        #expect(s.indexGate == "/tmp/index-gate")
        #expect(s.commitCrashAfter == "blob")
        #expect(s.snapshotCrashAfter == "metadata")
    }

    @Test func emptyOrUnparsableValuesKeepTheDefaults() {
        let environment = ["STRATA_READAHEAD_SPANS": "many", "STRATA_TEST_COPYUP_DELAY_MS": "-1",
                           "STRATA_GZIP_INFLATE": "isal", "STRATA_FUSE_STATS": "", "STRATA_TEST_INDEX_GATE": "",
                           "STRATA_FUSE_SPIN_US": "-5"]
        let s = RuntimeSettings(environment: { environment[$0] })
        #expect(s.readAheadSpans == 1)
        #expect(s.copyUpDelayMilliseconds == 0)
        #expect(s.fuseSpinMicroseconds == 400)
        #expect(s.gzipInflateWithIsal)
        #expect(s.fuseStatsPath == nil)
        #expect(s.indexGate == nil)
    }
}
