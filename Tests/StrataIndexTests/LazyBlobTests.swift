import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataIndex

/// A `BlobFetcher` over a local blob file that counts what it is asked for; it can hand out
/// wrong bytes, and hold a fetch until released.
final class CountingFetcher: BlobFetcher {
    let bytes: [UInt8]
    private struct State {
        var requests: [Range<UInt64>] = []
        var streams = 0
        var corrupt = false
        /// Fetches starting at or past this wait while held (nil: all of them).
        var heldFrom: UInt64?
    }
    private let state = Locked(State())
    private let gate = Locked(false)

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var requests: [Range<UInt64>] { state.withLock { $0.requests } }
    var streams: Int { state.withLock { $0.streams } }
    func setCorrupt(_ on: Bool) { state.withLock { $0.corrupt = on } }
    /// Fetches (those starting at or past `from`) wait until `release`.
    func hold(from: UInt64? = nil) {
        state.withLock { $0.heldFrom = from }
        gate.withLock { $0 = true }
    }
    func release() {
        gate.withLock { $0 = false }
        gate.broadcast()
    }

    func fetch(_ range: Range<UInt64>) throws -> [UInt8] {
        let (corrupt, held) = state.withLock { s in
            s.requests.append(range)
            return (s.corrupt, s.heldFrom.map { range.lowerBound >= $0 } ?? true)
        }
        if held { gate.withLock(when: { !$0 }) { _ in } }
        var out = Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)])
        if corrupt { out[out.count / 2] ^= 0x40 }
        return out
    }

    func stream(from offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        state.withLock { $0.streams += 1 }
        var at = Int(offset)
        try bytes.withUnsafeBytes { b in
            while at < b.count {
                let n = min(100_000, b.count - at)
                try body(UnsafeRawBufferPointer(rebasing: b[at..<(at + n)]))
                at += n
            }
        }
    }
}

/// Issue 11, the lazy blob cache: only missing bytes are fetched, in span-aligned requests of at
/// least 256 KiB, verified before they are kept; the record of what is present survives a
/// crash without ever trusting unwritten bytes; a layer with no index streams in one request.
@Suite struct LazyBlobTests {
    /// A gzip layer indexed with small spans (so that requests merge several), its blob in memory.
    struct Fixture {
        let temp: TempDirectory
        let cache: LayerCache
        let bytes: [UInt8]
        let digestHex: String
        let localBlob: LayerBlob
        let index: LayerIndex
        let fetcher: CountingFetcher

        init(spacing: UInt64 = 64 << 10) throws {
            temp = try TempDirectory()
            cache = try LayerCache(directory: temp.child("cache"))
            let big = content(4 << 20, seed: 21)
            let tar = try TarWriter.archive([(entry("big.bin", size: big.count), big),
                                             (entry("note.txt", size: 5), Array("note\n".utf8))])
            bytes = Gzip.compress(tar)
            digestHex = SHA256Hasher.hex(of: bytes)
            let path = temp.child("blob")
            try FileIO.writeAtomically(path, bytes)
            localBlob = LayerBlob(path: path, digestHex: digestHex, size: UInt64(bytes.count), compression: .gzip)
            try FileIO.writeAtomically(temp.child("idx"), try IndexBuilder.build(localBlob, checkpointSpacing: spacing))
            index = try LayerIndex(path: temp.child("idx"))
            fetcher = CountingFetcher(bytes)
        }

        func lazy(spans: Bool = true) throws -> LazyBlob {
            let lazy = try LazyBlob(cache: cache, digestHex: digestHex, size: UInt64(bytes.count), fetcher: fetcher)
            if spans { lazy.setSpans(index) }
            return lazy
        }

        /// The file's bytes at `range` (what the sparse file holds there).
        func fileBytes(_ lazy: LazyBlob, _ range: Range<UInt64>) throws -> [UInt8] {
            let all = try FileIO.readAll(lazy.path)
            return Array(all[Int(range.lowerBound)..<Int(range.upperBound)])
        }

        var spanStarts: Set<UInt64> { Set((0..<index.spanCount).map { index.spanRange($0).lowerBound }) }
        var spanEnds: Set<UInt64> { Set((0..<index.spanCount).map { index.spanRange($0).upperBound }) }
    }

    @Test func ensureFetchesMergedSpanAlignedRequestsOfOnlyWhatIsMissing() throws {
        let f = try Fixture()
        #expect(f.index.spanCount > 10)
        let lazy = try f.lazy()
        try lazy.ensure(1000..<1001)
        #expect(f.fetcher.requests.count == 1)
        let first = try #require(f.fetcher.requests.first)
        #expect(first.lowerBound == 0 && first.count >= Int(LazyBlob.minimumRequest) && f.spanEnds.contains(first.upperBound))
        #expect(try f.fileBytes(lazy, first) == Array(f.bytes[Int(first.lowerBound)..<Int(first.upperBound)]))
        // Present: nothing more.
        try lazy.ensure(first.lowerBound..<first.upperBound)
        #expect(f.fetcher.requests.count == 1)
        // Across the edge: only from the first missing span on.
        try lazy.ensure((first.upperBound - 10)..<(first.upperBound + 10))
        #expect(f.fetcher.requests.count == 2)
        let second = f.fetcher.requests[1]
        #expect(second.lowerBound + 1 >= first.upperBound && f.spanStarts.contains(second.lowerBound))
        #expect(second.count >= Int(LazyBlob.minimumRequest) || second.upperBound == UInt64(f.bytes.count))
        // Far away: its own request, aligned to spans.
        let far = UInt64(f.bytes.count) - 100
        try lazy.ensure(far..<(far + 1))
        let third = f.fetcher.requests[2]
        #expect(f.spanStarts.contains(third.lowerBound) && third.upperBound == UInt64(f.bytes.count))
        #expect(lazy.presentBytes == lazy.statistics.presentBytes && lazy.presentBytes > 0 && !lazy.isComplete)
    }

    @Test func statisticsAndDemandOrder() throws {
        let f = try Fixture()
        let lazy = try f.lazy()
        let size = UInt64(f.bytes.count)
        try lazy.ensure((size / 2)..<(size / 2 + 1))
        try lazy.ensure(10..<20)
        try lazy.ensure((size - 1)..<size, purpose: .prefetch)
        let requests = f.fetcher.requests
        #expect(requests.count == 3)
        // The order holds the spans each read needed, not the longer requests that fetched them.
        let order = lazy.demandOrder
        try #require(order.count == 2)
        for (needed, request) in zip(order, requests.prefix(2)) {
            #expect(needed.lowerBound == request.lowerBound && needed.upperBound <= request.upperBound)
            #expect((0..<f.index.spanCount).contains { f.index.spanRange($0).upperBound == needed.upperBound })
        }
        #expect(order[0].contains(size / 2) && order[1].contains(10) && order[1].count < requests[1].count)
        var s = lazy.statistics
        #expect(s.requests == 3 && s.size == size)
        #expect(s.demandBytes == UInt64(requests[0].count + requests[1].count) && s.prefetchBytes == UInt64(requests[2].count))
        #expect(s.backgroundBytes == 0 && s.presentBytes == s.demandBytes + s.prefetchBytes)
        try lazy.fillRemaining(bytesPerSecond: nil, shouldStop: { false })
        s = lazy.statistics
        #expect(lazy.isComplete && s.presentBytes == size)
        #expect(s.demandBytes + s.prefetchBytes + s.backgroundBytes >= size)
        #expect(try FileIO.readAll(lazy.path) == f.bytes)
        #expect(lazy.demandOrder == order)   // background fetches are not demand
    }

    /// A prefetch list's range is what a start read: fetched as it is, not stretched to
    /// `minimumRequest` as a read's miss is.
    @Test func prefetchFetchesExactlyTheSpansAsked() throws {
        let f = try Fixture()
        let lazy = try f.lazy()
        try #require(f.index.spanCount > 8)
        let span = f.index.spanRange(3)
        try #require(UInt64(span.count) < LazyBlob.minimumRequest)
        try lazy.ensure(span, purpose: .prefetch)
        #expect(f.fetcher.requests == [span])
        #expect(lazy.demandOrder.isEmpty)
        let later = f.index.spanRange(6).lowerBound + 2
        try lazy.ensure(later..<(later + 1))
        #expect(f.fetcher.requests.count == 2 && f.fetcher.requests[1].count >= Int(LazyBlob.minimumRequest))
        #expect(lazy.demandOrder == [f.index.spanRange(6)])
        // A read of bytes that request fetched beyond its need is recorded when it happens.
        let stretched = f.index.spanRange(7)
        try #require(f.fetcher.requests[1].upperBound >= stretched.upperBound)
        try lazy.ensure((stretched.lowerBound + 2)..<(stretched.lowerBound + 3))
        #expect(f.fetcher.requests.count == 2 && lazy.demandOrder == [f.index.spanRange(6), stretched])
        try lazy.ensure((stretched.lowerBound + 4)..<(stretched.lowerBound + 5))
        #expect(lazy.demandOrder.count == 2)
    }

    @Test func concurrentEnsuresOfOneRangeFetchOnce() throws {
        let f = try Fixture()
        let lazy = try f.lazy()
        f.fetcher.hold()
        let done = Locked(0)
        let failures = Locked(0)
        for _ in 0..<4 {
            detachThread {
                do { try lazy.ensure(5000..<6000) } catch { failures.withLock { $0 += 1 } }
                done.withLock { $0 += 1 }
                done.broadcast()
            }
        }
        // Let the others reach the fetch the first one is doing (no result depends on it).
        while f.fetcher.requests.isEmpty { usleep(1000) }
        usleep(100_000)
        f.fetcher.release()
        done.withLock(when: { $0 == 4 }) { _ in }
        #expect(failures.withLock { $0 } == 0)
        #expect(f.fetcher.requests.count == 1)
    }

    /// Background completion makes no request while a read waits for one.
    @Test func backgroundFillYieldsToReads() throws {
        let f = try Fixture()
        let lazy = try f.lazy()
        let last = f.index.spanRange(f.index.spanCount - 1)
        f.fetcher.hold(from: last.lowerBound)
        let demandDone = Locked(false)
        detachThread {
            try? lazy.ensure((last.upperBound - 1)..<last.upperBound)
            demandDone.withLock { $0 = true }
            demandDone.broadcast()
        }
        while f.fetcher.requests.isEmpty { usleep(1000) }
        let fillDone = Locked(false)
        detachThread {
            try? lazy.fillRemaining(bytesPerSecond: nil, shouldStop: { false })
            fillDone.withLock { $0 = true }
            fillDone.broadcast()
        }
        usleep(200_000)
        #expect(f.fetcher.requests.count == 1)   // the read's, still held: nothing in the background
        f.fetcher.release()
        demandDone.withLock(when: { $0 }) { _ in }
        fillDone.withLock(when: { $0 }) { _ in }
        #expect(lazy.isComplete && f.fetcher.requests.count >= 2)
        #expect(lazy.statistics.backgroundBytes > 0 && lazy.demandOrder.count == 1)
    }

    @Test func wrongBytesAreRefusedAndNothingIsRecorded() throws {
        let f = try Fixture()
        let lazy = try f.lazy()
        f.fetcher.setCorrupt(true)
        let error = #expect(throws: SpanMismatch.self) { try lazy.ensure(0..<100) }
        #expect(error?.fetched == true && error?.description.contains("sha256:\(f.digestHex)") == true)
        // Spans before the bad one may be kept (verified); the bad one and those after are not.
        let bad = try #require(error).offset
        #expect(!lazy.presentRanges.contains { $0.upperBound > bad + 1 })
        #expect(lazy.statistics.verificationFailures == 1)
        // A new process trusts the same: the record holds no more.
        let again = try f.lazy()
        #expect(again.presentRanges == lazy.presentRanges)
        f.fetcher.setCorrupt(false)
        try lazy.ensure(0..<100)
        #expect(try f.fileBytes(lazy, 0..<100) == Array(f.bytes[0..<100]))
    }

    /// The record is what is trusted: a range whose record is missing (a crash after the data
    /// write, before the record) is fetched again; a torn record is ignored.
    @Test func aRangeWithoutItsRecordIsFetchedAgain() throws {
        let f = try Fixture()
        do {
            let lazy = try f.lazy()
            try lazy.ensure(0..<10)
        }
        #expect(f.fetcher.requests.count == 1)
        // Another process sees it recorded: no fetch.
        do {
            let lazy = try f.lazy()
            try lazy.ensure(0..<10)
            #expect(f.fetcher.requests.count == 1 && lazy.presentBytes > 0)
        }
        // The data is there, the record is lost (and a torn slot is left): fetched again.
        let record = f.cache.blobRecordPath(digestHex: f.digestHex)
        try FileIO.writeAtomically(record, Array(repeating: 0x33, count: 20))
        let lazy = try f.lazy()
        #expect(lazy.presentBytes == 0)
        try lazy.ensure(0..<10)
        #expect(f.fetcher.requests.count == 2)
        // Its data evicted, the record left: nothing trusted.
        unlink(f.cache.blobPath(digestHex: f.digestHex))
        let fresh = try f.lazy()
        #expect(fresh.presentBytes == 0)
    }

    /// Evicted while in use: the process keeps reading what it has, and records nothing for the
    /// blob that replaces it.
    @Test func anEvictedBlobInUseRecordsNothingForItsSuccessor() throws {
        let f = try Fixture()
        let a = try f.lazy()
        try a.ensure(0..<10)
        let entries = f.cache.entries([.blob])
        #expect(entries.count == 1 && entries.first?.key == f.digestHex)
        for entry in entries { #expect(f.cache.remove(entry)) }
        #expect(!FileIO.exists(f.cache.blobRecordPath(digestHex: f.digestHex)))
        let b = try f.lazy()   // a new blob in the cache
        let size = UInt64(f.bytes.count)
        try a.ensure((size - 10)..<size)
        #expect(a.isComplete == false && a.presentRanges.contains { $0.upperBound == size })
        let c = try f.lazy()
        #expect(b.presentBytes == 0 && c.presentBytes == 0)
    }

    /// Two processes sharing the cache: one's fetch is found by the other (read from the record).
    @Test func anotherProcessFetchIsSeen() throws {
        let f = try Fixture()
        let a = try f.lazy(), b = try f.lazy()
        try a.ensure(0..<10)
        try b.ensure(0..<10)
        #expect(f.fetcher.requests.count == 1)
        b.discard()
        #expect(b.presentBytes == 0)
        let c = try f.lazy()
        #expect(c.presentBytes == 0)
    }

    /// Two processes fetching the same range at once both succeed, and the record stays sound.
    @Test func twoProcessesFetchingTheSameRangeBothSucceed() throws {
        let f = try Fixture()
        let a = try f.lazy(), b = try f.lazy()
        f.fetcher.hold()
        let done = Locked(0), failures = Locked(0)
        for lazy in [a, b] {
            detachThread {
                do { try lazy.ensure(0..<10) } catch { failures.withLock { $0 += 1 } }
                done.withLock { $0 += 1 }
                done.broadcast()
            }
        }
        while f.fetcher.requests.count < 2 { usleep(1000) }
        f.fetcher.release()
        done.withLock(when: { $0 == 2 }) { _ in }
        #expect(failures.withLock { $0 } == 0)
        let c = try f.lazy()
        #expect(c.presentRanges == a.presentRanges && c.presentRanges == b.presentRanges && c.presentBytes > 0)
        let r = try #require(c.presentRanges.first)
        #expect(try f.fileBytes(c, r) == Array(f.bytes[Int(r.lowerBound)..<Int(r.upperBound)]))
    }

    /// A layer with no index: indexing reads it through the lazy blob, which streams it with
    /// one request; the index is the one the local blob gives, and the blob is then complete.
    @Test func streamingBuildsTheSameIndexWithOneRequest() throws {
        let f = try Fixture()
        let lazy = try f.lazy(spans: false)
        let blob = LayerBlob(lazy: lazy, compression: .gzip)
        let (index, built) = try f.cache.index(blob)
        #expect(built)
        #expect(f.fetcher.streams == 1 && f.fetcher.requests.isEmpty)
        let local = try IndexBuilder.build(f.localBlob)
        #expect(try FileIO.readAll(index.file.path) == local)
        #expect(lazy.isComplete && lazy.hasSpans && lazy.statistics.streamedBytes == UInt64(f.bytes.count))
        // And a LayerData reads from it with no more requests.
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 32 << 20), copyPath: f.temp.child("copy"))
        var note = [UInt8](repeating: 0, count: 5)
        let e = try #require((0..<index.entryCount).map(index.entry).first { String(decoding: $0.path, as: UTF8.self) == "note.txt" })
        try note.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
        #expect(note == Array("note\n".utf8) && f.fetcher.requests.isEmpty && f.fetcher.streams == 1)
    }

    /// A lazy blob with an index: a read fetches just the spans it decodes.
    @Test func readingAFileFetchesOnlyItsSpans() throws {
        let f = try Fixture(spacing: 1 << 20)
        let lazy = try f.lazy(spans: false)
        var blob = LayerBlob(lazy: lazy, compression: .gzip)
        blob.diffID = nil
        try FileIO.makeDirectories(f.temp.child("cache/index/sha256"))
        try FileIO.writeAtomically(f.cache.indexPath(digestHex: f.digestHex), try FileIO.readAll(f.index.file.path))
        try FileIO.makeDirectories(f.temp.child("cache/diffid/sha256"))
        let local = try IndexBuilder.buildVerified(f.localBlob)
        try FileIO.writeAtomically(f.cache.diffIDPath(digestHex: f.digestHex), Array("sha256:\(local.diffIDHex)\n".utf8))
        let (index, built) = try f.cache.index(blob)
        #expect(!built && lazy.hasSpans)
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 32 << 20, readAhead: 0),
                                 copyPath: f.temp.child("copy"))
        let e = try #require((0..<index.entryCount).map(index.entry).first { String(decoding: $0.path, as: UTF8.self) == "note.txt" })
        var note = [UInt8](repeating: 0, count: 5)
        try note.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
        #expect(note == Array("note\n".utf8))
        #expect(f.fetcher.streams == 0 && !f.fetcher.requests.isEmpty)
        #expect(lazy.presentBytes < UInt64(f.bytes.count) / 2)
        let span = index.span(forCheckpoint: index.checkpointIndex(containing: e.dataOffset))
        #expect(lazy.presentRanges.contains { $0.contains(index.spanRange(span).lowerBound) })
    }

    /// A plain tar layer fetched lazily: a read fetches the 1 MiB pieces it touches (merged,
    /// verified), no others; the bytes read are the file's.
    @Test func plainLayerReadsFetchTheirPieces() throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let big = content(5 << 20, seed: 4)
        let tar = try TarWriter.archive([(entry("big.bin", size: big.count), big)])
        let path = temp.child("blob")
        try FileIO.writeAtomically(path, tar)
        let hex = SHA256Hasher.hex(of: tar)
        let local = LayerBlob(path: path, digestHex: hex, size: UInt64(tar.count), compression: .none)
        try FileIO.writeAtomically(temp.child("idx"), try IndexBuilder.build(local))
        let index = try LayerIndex(path: temp.child("idx"))
        let fetcher = CountingFetcher(tar)
        let lazy = try LazyBlob(cache: cache, digestHex: hex, size: UInt64(tar.count), fetcher: fetcher)
        let data = try LayerData(index: index, blob: LayerBlob(lazy: lazy, compression: .none), number: 0,
                                 cache: SpanCache(capacity: 16 << 20), copyPath: temp.child("copy"))
        #expect(lazy.hasSpans)
        let offset = index.entry(0).dataOffset + (3 << 20) + 100
        var got = [UInt8](repeating: 0, count: 8192)
        try got.withUnsafeMutableBytes { try data.copy(offset: offset, into: $0) }
        let start = Int(offset - index.entry(0).dataOffset)
        #expect(got == Array(big[start..<(start + 8192)]))
        #expect(fetcher.requests == [index.spanRange(index.spanIndex(containing: offset))])
        #expect(lazy.presentBytes == 1 << 20 && lazy.demandOrder == fetcher.requests)
    }

    /// Delivers a range in two pieces (up to `split`, then the rest), running `between` after
    /// the first; it can damage the second piece.
    final class TwoPieceFetcher: BlobFetcher, @unchecked Sendable {
        let bytes: [UInt8]
        var split: UInt64 = 0
        var between: () -> Void = {}
        var damageSecond = false
        init(_ bytes: [UInt8]) { self.bytes = bytes }
        func fetch(_ range: Range<UInt64>) throws -> [UInt8] { try fetch(range, arrived: { _ in }) }
        func fetch(_ range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) -> Void) throws -> [UInt8] {
            var out = Array(bytes[Int(range.lowerBound)..<Int(range.upperBound)])
            if damageSecond { out[out.count - 1] ^= 0x40 }
            out.withUnsafeBytes { arrived(UnsafeRawBufferPointer(rebasing: $0[..<Int(split - range.lowerBound)])) }
            between()
            out.withUnsafeBytes(arrived)
            return out
        }
        func stream(from offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {}
    }

    /// A span is served as soon as its bytes arrived and checked, before the rest of its
    /// request; it is recorded (for other processes, and after a crash) once the request ends.
    @Test func aSpanIsPresentBeforeItsRequestEnds() throws {
        let f = try Fixture()
        let first = f.index.spanRange(0), second = f.index.spanRange(1)
        let fetcher = TwoPieceFetcher(f.bytes)
        fetcher.split = first.upperBound
        let lazy = try LazyBlob(cache: f.cache, digestHex: f.digestHex, size: UInt64(f.bytes.count), fetcher: fetcher)
        lazy.setSpans(f.index)
        var seen: (here: Bool, secondHere: Bool, elsewhere: Bool)?
        fetcher.between = {
            let other = try? LazyBlob(cache: f.cache, digestHex: f.digestHex, size: UInt64(f.bytes.count), fetcher: fetcher)
            seen = (lazy.contains(first), lazy.contains(second), other?.contains(first) ?? true)
        }
        try lazy.ensure(first.lowerBound..<second.upperBound, purpose: .prefetch)
        #expect(seen?.here == true && seen?.secondHere == false && seen?.elsewhere == false)
        let other = try LazyBlob(cache: f.cache, digestHex: f.digestHex, size: UInt64(f.bytes.count), fetcher: fetcher)
        #expect(other.contains(first.lowerBound..<second.upperBound))
        #expect(try f.fileBytes(lazy, first.lowerBound..<second.upperBound) == Array(f.bytes[Int(first.lowerBound)..<Int(second.upperBound)]))
    }

    /// A request whose later span is wrong keeps (and records) the spans that checked before it.
    @Test func spansCheckedBeforeAWrongOneAreKept() throws {
        let f = try Fixture()
        let first = f.index.spanRange(0), second = f.index.spanRange(1)
        let fetcher = TwoPieceFetcher(f.bytes)
        fetcher.split = first.upperBound
        fetcher.damageSecond = true
        let lazy = try LazyBlob(cache: f.cache, digestHex: f.digestHex, size: UInt64(f.bytes.count), fetcher: fetcher)
        lazy.setSpans(f.index)
        #expect(throws: SpanMismatch.self) { try lazy.ensure(first.lowerBound..<second.upperBound, purpose: .prefetch) }
        #expect(lazy.contains(first) && !lazy.contains(second))
        let other = try LazyBlob(cache: f.cache, digestHex: f.digestHex, size: UInt64(f.bytes.count), fetcher: fetcher)
        #expect(other.contains(first) && !other.contains(second))
    }
}
