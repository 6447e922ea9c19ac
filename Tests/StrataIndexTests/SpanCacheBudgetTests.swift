import Testing
@testable import StrataIndex

/// The span cache's budget grows with the places read at once, not with requests: the kernel's
/// read-ahead of one file sends several requests into one span at once, and counted as reads they
/// gave one reader the budget of several (issue 13: peak RSS after one read-all 42 → 53.6 MB).
@Suite struct SpanCacheBudgetTests {
    @Test func readsInOneSpanCountOnceAndDistinctSpansGrowTheBudget() {
        let cache = SpanCache(capacity: 16 << 20, readAhead: 0)
        let one = SpanCache.Key(layer: 0, span: 3)
        for _ in 0..<8 { cache.beginRead(one) }
        #expect(cache.currentBudget == 16 << 20)
        // Four readers in four places (two share the first span's layer, one reads another layer).
        let others = [SpanCache.Key(layer: 0, span: 9), SpanCache.Key(layer: 0, span: 20), SpanCache.Key(layer: 1, span: 3)]
        for key in others { cache.beginRead(key) }
        // Two spans beyond the two `capacity` serves, two spans (of at least 1 MiB) each.
        #expect(cache.currentBudget >= (16 << 20) + 4 * (1 << 20))
        #expect(cache.currentBudget <= 3 * (16 << 20))
        for key in others { cache.endRead(key) }
        for _ in 0..<8 { cache.endRead(one) }
    }
}
