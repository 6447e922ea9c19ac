import Testing
@testable import StrataIndex
#if canImport(Glibc)
import Glibc
#endif

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

/// Freed span buffers are decoded into again, spans decoded in part too: a program's first
/// start decodes a hundred spans in part, and faulting in fresh pages for each was a quarter of
/// the daemon's CPU. A recycled buffer's pages count against the budget whatever is decoded.
@Suite struct SpanBufferReuseTests {
    @Test func aPartialSpanTakesTheSpareWithTheMostPagesAndIsChargedForThem() throws {
        let buffers = SpanBuffers(spareLimit: 4)
        let small = try #require(SpanBuffers.map(600 << 10)), large = try #require(SpanBuffers.map(600 << 10))
        #expect(buffers.give(small, resident: 100 << 10))
        #expect(buffers.give(large, resident: 700 << 10))
        let span = DecodedSpan(start: 0, count: 500 << 10, buffers: buffers, partial: true)
        #expect(span.bytes.baseAddress == large.baseAddress)
        #expect(span.inherited == 700 << 10)
        #expect(SpanCache.charge(span) == 700 << 10)
        #expect(buffers.spareBytes == 100 << 10)
    }

    @Test func sparesAreCountedByTheirPagesWithinTheirBudget() throws {
        let buffers = SpanBuffers(spareLimit: 4, budget: 1 << 20)
        let a = try #require(SpanBuffers.map(2 << 20)), b = try #require(SpanBuffers.map(2 << 20))
        // A 2 MiB mapping with 600 KiB of pages fits a 1 MiB budget; a second one does not.
        #expect(buffers.give(a, resident: 600 << 10))
        #expect(!buffers.give(b, resident: 600 << 10))
        munmap(b.baseAddress, b.count)
        buffers.limit(to: 500 << 10)
        #expect(buffers.spareBytes == 0)
    }

    @Test func spansReadInPartOnAFullCacheReuseFreedBuffers() throws {
        let layer = try SpanReadAheadTests.Layer()
        let cache = SpanCache(capacity: 2 << 20, readAhead: 0)
        let data = try layer.data(cache)
        // One small read in each span: every decode is partial, and the budget holds two.
        let spans = layer.index.checkpointCount
        #expect(spans >= 8)
        for i in 0..<spans {
            let offset = try layer.index.checkpoint(i).uncompressedOffset + 5000
            guard offset + 100 <= layer.index.uncompressedSize else { continue }
            var got: [UInt8] = []
            try data.read(offset: offset, count: 100) { got = Array($0) }
            #expect(got == Array(layer.tar[Int(offset)..<Int(offset) + 100]))
        }
        #expect(cache.recycledBuffers >= spans - 4, "\(cache.recycledBuffers) of \(spans)")
        #expect(cache.residentBytes <= (2 << 20) + (2 << 20) / SpanCache.spareShare + (1 << 20), "\(cache.residentBytes)")
    }
}
