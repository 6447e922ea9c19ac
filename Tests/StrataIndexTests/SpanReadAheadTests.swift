import Testing
import StrataCodec
import StrataSystem
import StrataTar
@testable import StrataIndex

/// Read-ahead: a sequential reader gets spans decoded in the background, each once, with the
/// same bytes as without; other patterns decode nothing extra. No timing is asserted.
@Suite struct SpanReadAheadTests {
    /// A gzip layer of one large file, indexed with 1 MiB spans.
    struct Layer {
        let scratch = Scratch()
        let tar: [UInt8]
        let blob: LayerBlob
        let index: LayerIndex

        init() throws {
            let big = content(9 << 20, seed: 11)
            tar = try TarWriter.archive([(entry("big.bin", size: big.count), big)])
            blob = try scratch.blob(Gzip.compress(tar), .gzip)
            try FileIO.writeAtomically("\(scratch.path)/idx", try IndexBuilder.build(blob, checkpointSpacing: 1 << 20))
            index = try LayerIndex(path: "\(scratch.path)/idx")
        }

        func data(_ cache: SpanCache) throws -> LayerData {
            try LayerData(index: index, blob: blob, number: 0, cache: cache, copyPath: "\(scratch.path)/copy.tar")
        }
    }

    /// The whole stream read front to back in `chunk`-byte requests.
    func readAll(_ data: LayerData, chunk: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Int(data.index.uncompressedSize))
        var offset: UInt64 = 0
        while offset < data.index.uncompressedSize {
            let n = Int(min(UInt64(chunk), data.index.uncompressedSize - offset))
            try data.read(offset: offset, count: n) { out.append(contentsOf: $0) }
            offset += UInt64(n)
        }
        return out
    }

    @Test func sequentialReadDecodesEachSpanOnce() throws {
        let layer = try Layer()
        #expect(layer.index.checkpointCount > 5)
        let cache = SpanCache(capacity: 64 << 20, readAhead: 2)
        let got = try readAll(try layer.data(cache), chunk: 128 << 10)
        cache.waitForPrefetches()
        #expect(cache.decodedSpans == layer.index.checkpointCount)
        #expect(cache.decodedBytes == layer.index.uncompressedSize)

        let plainCache = SpanCache(capacity: 64 << 20, readAhead: 0)
        let plain = try readAll(try layer.data(plainCache), chunk: 128 << 10)
        #expect(plain == layer.tar)
        #expect(got == plain)
    }

    @Test func readsAcrossSpansUnderATightBudgetStayExact() throws {
        let layer = try Layer()
        // Room for about two spans: read-ahead evicts, requests re-decode, bytes stay right.
        let cache = SpanCache(capacity: 2 << 20, readAhead: 1)
        let data = try layer.data(cache)
        #expect(try readAll(data, chunk: 300_000) == layer.tar)
        var whole = [UInt8](repeating: 0, count: layer.tar.count)
        try whole.withUnsafeMutableBytes { try data.copy(offset: 0, into: $0) }
        cache.waitForPrefetches()
        #expect(whole == layer.tar)
        // Cached spans, spans in decode and buffers kept for reuse all fit the budget.
        #expect(cache.residentBytes <= 2 << 20 + (1 << 20), "\(cache.residentBytes)")
    }

    @Test func residentSpanMemoryStaysWithinTheBudget() throws {
        let layer = try Layer()
        let capacity = 3 << 20
        let cache = SpanCache(capacity: capacity, readAhead: 1)
        let data = try layer.data(cache)
        var offset: UInt64 = 0
        var worst = 0
        while offset < layer.index.uncompressedSize {
            let n = Int(min(UInt64(200_000), layer.index.uncompressedSize - offset))
            try data.read(offset: offset, count: n) { _ in }
            worst = max(worst, cache.residentBytes)
            offset += UInt64(n)
        }
        cache.waitForPrefetches()
        worst = max(worst, cache.residentBytes)
        // One span (1 MiB, rounded up to the mapping granule) may exceed it while its decode
        // waits for a reader to let go of an evicted span.
        #expect(worst <= capacity + (1 << 20) + SpanBuffers.granule, "\(worst)")
        #expect(cache.decodedSpans >= layer.index.checkpointCount)
    }

    /// Reads `count` bytes at `delta` into span `span` and checks them.
    func check(_ data: LayerData, _ layer: Layer, span: Int, delta: UInt64) throws {
        let offset = try layer.index.checkpoint(span).uncompressedOffset + delta
        var got: [UInt8] = []
        try data.read(offset: offset, count: 100) { got = Array($0) }
        #expect(got == Array(layer.tar[Int(offset)..<Int(offset + 100)]))
    }

    @Test func jumpsAndBackwardReadsAreNotReadAhead() throws {
        let layer = try Layer()
        let cache = SpanCache(capacity: 64 << 20, readAhead: 1)
        let data = try layer.data(cache)
        try check(data, layer, span: 3, delta: 5000)
        try check(data, layer, span: 1, delta: 10)
        try check(data, layer, span: 5, delta: 5000)
        try check(data, layer, span: 5, delta: 10)   // backward within the span
        cache.waitForPrefetches()
        #expect(cache.decodedSpans == 3)
    }

    @Test func aReaderStreamingDenselyReadsAhead() throws {
        let layer = try Layer()
        let cache = SpanCache(capacity: 64 << 20, readAhead: 1)
        let data = try layer.data(cache)
        let start = try layer.index.checkpoint(3).uncompressedOffset
        // Less than a span's worth read: no stream yet, nothing read ahead.
        for k in 0..<4 { try data.read(offset: start + UInt64(k) * (128 << 10), count: 128 << 10) { _ in } }
        cache.waitForPrefetches()
        #expect(cache.decodedSpans == 1)
        // Reading on in order, into span 4: the reader is streaming by then, and span 5 is
        // decoded ahead although nothing read it (once: read-ahead is one span here).
        let end = try layer.index.checkpoint(4).uncompressedOffset + (300 << 10)
        var offset = start + (512 << 10)
        while offset < end {
            let n = Int(min(UInt64(128 << 10), end - offset))
            try data.read(offset: offset, count: n) { _ in }
            offset += UInt64(n)
        }
        cache.waitForPrefetches()
        #expect(cache.decodedSpans == 3)
    }

    /// A reader whose requests are a span long (the kernel's read-ahead through a large file)
    /// would reach the next span with its next request: spans are decoded ahead for three of
    /// its requests, not one span as for small reads.
    @Test func spanSizedReadsAreReadAheadFurther() throws {
        let layer = try Layer()
        let cache = SpanCache(capacity: 64 << 20, readAhead: 1)
        let data = try layer.data(cache)
        let start = try layer.index.checkpoint(2).uncompressedOffset
        let spanBytes = Int(layer.index.uncompressedSize / UInt64(layer.index.checkpointCount))
        try data.read(offset: start, count: spanBytes) { _ in }
        cache.waitForPrefetches()
        // Span 2 (and 3, if the read reaches it), then 3, 4 and 5 ahead: each decoded once.
        #expect(cache.decodedSpans == 4)
    }

    /// A program loading modules: small reads moving forward through the stream, far apart.
    /// They continue one stream, but sparsely: nothing is read ahead, and each span is inflated
    /// only up to the last byte read in it.
    @Test func sparseForwardReadsAreNotReadAhead() throws {
        let layer = try Layer()
        let cache = SpanCache(capacity: 64 << 20, readAhead: 1)
        let data = try layer.data(cache)
        var offset: UInt64 = 1000
        var touched = Set<Int>()
        while offset + 4096 < layer.index.uncompressedSize {
            try data.read(offset: offset, count: 4096) { got in
                #expect(Array(got) == Array(layer.tar[Int(offset)..<Int(offset) + 4096]))
            }
            // A read may cross a checkpoint: both spans are decoded.
            touched.insert(layer.index.checkpointIndex(containing: offset))
            touched.insert(layer.index.checkpointIndex(containing: offset + 4095))
            offset += 700 << 10
        }
        cache.waitForPrefetches()
        #expect(cache.decodedSpans == touched.count)
        #expect(cache.decodedBytes < layer.index.uncompressedSize * 3 / 4, "\(cache.decodedBytes)")
    }

    /// A read inflates its span only up to what it asks for (rounded up to the decode step);
    /// a later read further in goes on from there instead of starting over at the checkpoint.
    @Test func aSpanIsInflatedOnlyUpToTheBytesAsked() throws {
        let layer = try Layer()
        let cache = SpanCache(capacity: 64 << 20, readAhead: 0)
        let data = try layer.data(cache)
        let start = try layer.index.checkpoint(2).uncompressedOffset
        let spanBytes = Int(layer.index.spanEnd(2) - start)
        let step = UInt64(LayerData.partialGranule)
        func upTo(_ end: UInt64) -> UInt64 { (end + step - 1) / step * step }
        try check(data, layer, span: 2, delta: 1000)
        #expect(cache.decodedBytes == upTo(1100))
        try check(data, layer, span: 2, delta: 600 << 10)
        try check(data, layer, span: 2, delta: 300 << 10)   // already decoded
        #expect(cache.decodedBytes == upTo((600 << 10) + 100))
        #expect(cache.decodedSpans == 1)
        // The rest of the span, across into the next one: each byte inflated once.
        var whole = [UInt8](repeating: 0, count: spanBytes + 5000)
        try whole.withUnsafeMutableBytes { try data.copy(offset: start, into: $0) }
        #expect(whole == Array(layer.tar[Int(start)..<Int(start) + spanBytes + 5000]))
        #expect(cache.decodedBytes == UInt64(spanBytes + LayerData.partialGranule))
    }

    /// Several sequential readers of one layer, their reads interleaved: each keeps its own
    /// stream, so every span is decoded once and each reader gets its next span read ahead.
    @Test func interleavedSequentialReadersEachKeepTheirStream() throws {
        let layer = try Layer()
        let cache = SpanCache(capacity: 64 << 20, readAhead: 1)
        let data = try layer.data(cache)
        let starts: [UInt64] = [0, 3 << 20, 6 << 20]
        var positions = starts
        var outputs = [[UInt8]](repeating: [], count: starts.count)
        let length: UInt64 = 3 << 20
        while positions.enumerated().contains(where: { $0.element < starts[$0.offset] + length }) {
            for r in positions.indices where positions[r] < starts[r] + length {
                let n = Int(min(UInt64(100 << 10), starts[r] + length - positions[r]))
                try data.read(offset: positions[r], count: n) { outputs[r] += $0 }
                positions[r] += UInt64(n)
            }
        }
        cache.waitForPrefetches()
        for r in starts.indices {
            let from = Int(starts[r])
            #expect(outputs[r] == Array(layer.tar[from..<(from + outputs[r].count)]))
        }
        #expect(cache.decodedBytes <= layer.index.uncompressedSize, "\(cache.decodedBytes)")
    }

    @Test func passedSpansAreEvictedFirst() throws {
        let cache = SpanCache(capacity: 2 << 20, readAhead: 0)
        var decodes: [SpanCache.Key] = []
        func get(_ layer: Int, _ span: Int) throws {
            let key = SpanCache.Key(layer: layer, span: span)
            _ = try cache.span(key) {
                decodes.append(key)
                return cache.newSpan(start: 0, count: 1 << 20)
            }
        }
        try get(0, 0)
        try get(1, 0)
        try get(0, 0)   // layer 0's span is now the most recent…
        cache.move(left: nil, entered: SpanCache.Key(layer: 0, span: 0))
        cache.move(left: SpanCache.Key(layer: 0, span: 0), entered: nil)   // …but its reader has moved on
        try get(0, 1)   // evicts (0, 0), not the least recently used (1, 0)
        try get(1, 0)
        #expect(decodes.count == 3)
        try get(0, 0)
        #expect(decodes.count == 4)
    }
}
