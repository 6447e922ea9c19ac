import Testing
import StrataCodec
import StrataSystem
@testable import StrataIndex

/// An index installed without its windows (as a published one is) makes a missing window from
/// the span before it when that span's bytes are here, instead of fetching it.
@Suite struct DerivedWindowTests {
    /// Hands out an index file's bytes and counts the requests.
    final class CountingWindowSource: IndexWindowSource, @unchecked Sendable {
        let bytes: [UInt8]
        let requests = Locked(0)
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        var indexBlob: String { "sha256:test-index" }
        func indexBytes(_ range: Range<UInt64>) throws -> [UInt8] {
            requests.withLock { $0 += 1 }
            return Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)])
        }
    }

    @Test func aMissingWindowIsMadeFromTheSpanBeforeWhenItIsHere() throws {
        let f = try LazyBlobTests.Fixture(spacing: 64 << 10)
        let honest = try FileIO.readAll(f.index.file.path)
        let section = try #require(IndexWindows.section(header: honest))
        // The windows section a hole, as an install without windows leaves it.
        var windowless = honest
        for i in Int(section.lowerBound)..<Int(section.upperBound) { windowless[i] = 0 }
        let path = f.temp.child("windowless-index")
        try FileIO.writeAtomically(path, windowless)
        let source = CountingWindowSource(honest)
        IndexWindows.register(source, indexPath: path)
        defer { IndexWindows.unregister(indexPath: path) }
        let index = try LayerIndex(path: path, verify: false)
        let lazy = try f.lazy()
        var blob = LayerBlob(lazy: lazy, compression: .gzip)
        blob.diffID = nil
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 32 << 20, readAhead: 0),
                                 copyPath: f.temp.child("copy"))
        let tar = try Gzip.decompress(f.bytes)
        func read(span k: Int) throws -> Bool {
            let at = index.checkpointOffsets(k).uncompressed + 100
            var got = [UInt8](repeating: 0, count: 64)
            try got.withUnsafeMutableBytes { try data.copy(offset: at, into: $0) }
            return got[...] == tar[Int(at)..<(Int(at) + 64)]
        }
        let k = 3
        #expect(index.windowMissing(k - 1) && index.windowMissing(k))
        // Span k-2 is not here: reading span k-1 fetches its window.
        #expect(try read(span: k - 1))
        #expect(source.requests.withLock { $0 } == 1 && !index.windowMissing(k - 1))
        // Span k-1 is here now: span k's window is made from it, checked and written in.
        #expect(try read(span: k))
        #expect(source.requests.withLock { $0 } == 1)
        #expect(!index.windowMissing(k))
        let stored = try #require(index.storedWindow(k))
        #expect(try FileIO.readAll(path)[stored.range] == honest[stored.range])
        // Through several spans back, as far as the bytes are here.
        try lazy.ensure(index.spanRange(k).lowerBound..<index.spanRange(k + 2).upperBound, purpose: .prefetch)
        #expect(try read(span: k + 3))
        #expect(source.requests.withLock { $0 } == 1)
        // A span whose predecessor is not here fetches its window (reads fetch at least
        // `LazyBlob.minimumRequest`: far enough past what was read).
        let far = try #require((k + 4..<index.checkpointCount).first { !lazy.contains(index.spanRange($0 - 1)) && !lazy.contains(index.spanRange($0)) })
        #expect(try read(span: far))
        #expect(source.requests.withLock { $0 } == 2)
    }
}
