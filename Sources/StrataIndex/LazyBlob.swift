import StrataCodec
import StrataHash
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where a lazy blob's missing bytes come from (implemented in StrataRemote over RegistryClient).
public protocol BlobFetcher: Sendable {
    /// Exactly the bytes `range` of the blob.
    func fetch(_ range: Range<UInt64>) throws -> [UInt8]
    /// The same, with `arrived` called as the bytes come with all of them so far (from the
    /// range's start; again from the start after a retry).
    func fetch(_ range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) -> Void) throws -> [UInt8]
    /// The whole blob from `offset`, in order (used when streaming a layer that has no index yet).
    func stream(from offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
}

extension BlobFetcher {
    /// A source that delivers a range whole: `arrived` is called once, with all of it.
    public func fetch(_ range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) -> Void) throws -> [UInt8] {
        let bytes = try fetch(range)
        bytes.withUnsafeBytes(arrived)
        return bytes
    }
}

/// Why bytes are fetched: counted apart, and on-demand reads go first. `readAhead` is a
/// reader's stream decoded ahead of it: counted as prefetch, but recorded in `demandOrder`
/// with the reads that caused it (a prefetch list must hold what the reader went on to read).
public enum FetchPurpose: Sendable {
    case demand, readAhead, prefetch, background
}

public struct LazyBlobStatistics: Sendable, Equatable {
    /// Verified bytes in the cache (recorded: they survive a restart).
    public var presentBytes: UInt64 = 0
    public var size: UInt64 = 0
    public var demandBytes: UInt64 = 0
    public var prefetchBytes: UInt64 = 0
    public var backgroundBytes: UInt64 = 0
    /// Bytes received by streaming (a layer indexed as it downloads).
    public var streamedBytes: UInt64 = 0
    /// Range requests plus streams started.
    public var requests = 0
    /// Fetched spans that did not match their digest (nothing of them kept).
    public var verificationFailures = 0
    public init() {}
}

/// A span whose bytes are not the ones the layer was indexed with: fetched wrong, or the blob
/// changed after it was indexed. Never served: the reader gets EIO.
public struct SpanMismatch: Error, CustomStringConvertible, Sendable {
    public var digestHex: String
    public var span: Int
    public var offset: UInt64
    /// Found in bytes just fetched (else in the blob's file, when decoding).
    public var fetched: Bool
    public init(digestHex: String, span: Int, offset: UInt64, fetched: Bool) {
        self.digestHex = digestHex; self.span = span; self.offset = offset; self.fetched = fetched
    }
    public var description: String {
        fetched
            ? "layer sha256:\(digestHex): fetched span \(span) at offset \(offset) does not match its digest"
            : "layer sha256:\(digestHex) changed after it was indexed: span \(span) at offset \(offset)"
    }
}

/// A layer blob fetched as it is read: `CACHE/blobs/sha256/<hex>`, a sparse file of the blob's
/// size, plus `<hex>.ranges`, the record of the ranges present. Shared by every mount and
/// process using the layer.
///
/// Crash safety: a range's bytes are written and fdatasync'd before its record is appended, so
/// after a crash a range is either recorded and present, or not recorded (and fetched again).
/// Records are 32-byte slots (start, end, checksum, magic) appended under flock; a slot that
/// does not check (a torn write) is ignored. Only verified bytes are recorded: spans checked
/// against the index's span digests, or a streamed blob whose whole digest the indexer checked.
///
/// `ensure` fetches only what is missing, span-aligned, in requests of at least `minimumRequest`
/// bytes; concurrent calls for the same bytes wait for one fetch; background completion yields
/// to them. Without span digests (a layer with no index yet), `ensure` streams the blob in
/// order with one request (`BlobFetcher.stream`), writing it as it comes.
public final class LazyBlob: BlobAvailability, Sendable {
    public static let minimumRequest: UInt64 = 256 << 10
    /// The most one background request asks for.
    static let backgroundChunk: UInt64 = 4 << 20

    public let digestHex: String
    public let size: UInt64
    /// The sparse file.
    public let path: String
    public let recordPath: String
    private let fetcher: any BlobFetcher
    private let data: FileDescriptor
    private let record: FileDescriptor

    /// `digest` nil: bytes not checkable as fetched (an index from a TOC: its chunk digests are
    /// of uncompressed bytes, checked when decoded; the headers between chunks are covered
    /// only by the whole blob's digest once complete).
    private struct Span { var range: Range<UInt64>; var digest: [UInt8]? }
    // An object, so that `wait` may release the lock inside `withLock` (see `Locked`).
    private final class State {
        var present = ByteRanges()
        var inFlight: [Range<UInt64>] = []
        var spans: [Span]?
        var demandWaiting = 0
        var recordRead = 0
        var statistics = LazyBlobStatistics()
        var demandOrder: [Range<UInt64>] = []
        /// Fetched for a read beyond what it needed (`minimumRequest`), not yet read: a read
        /// that finds its bytes here still goes in `demandOrder`.
        var unrecorded = ByteRanges()
        /// Streaming: bytes [0, streamed) written, not yet verified; the stream's error.
        var streamed: UInt64 = 0
        var streaming = false
        var streamError: (any Error)?
    }
    private let state: Locked<State>

    /// Opens (creating) the layer's blob in `cache`.
    public init(cache: LayerCache, digestHex: String, size: UInt64, fetcher: any BlobFetcher) throws {
        self.digestHex = digestHex
        self.size = size
        self.fetcher = fetcher
        path = cache.blobPath(digestHex: digestHex)
        recordPath = cache.blobRecordPath(digestHex: digestHex)
        do {
            try cache.makeBlobDirectory()
            // A data file made now trusts no record left without one (its data was evicted).
            var created = true
            var fd: FileDescriptor
            do { fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode: 0o644) } catch {
                created = false
                fd = try FileDescriptor.open(path, O_RDWR | O_CLOEXEC)
            }
            data = fd
            let recordFlags = O_RDWR | O_CREAT | O_CLOEXEC | (created ? O_TRUNC : 0)
            do { record = try FileDescriptor.open(recordPath, recordFlags, mode: 0o644) } catch {
                data.close()
                throw error
            }
            if UInt64(try data.stat().st_size) != size { try data.truncate(size) }
        } catch let error as IndexError {
            throw error
        } catch {
            throw IndexError("layer sha256:\(digestHex): cache blob \(path)", wrapping: error)
        }
        let s = State()
        s.statistics.size = size
        state = Locked(s)
        state.withLock { readRecords($0) }
    }

    deinit {
        data.close()
        record.close()
    }

    // MARK: What is present

    public var presentBytes: UInt64 { state.withLock { $0.present.count } }
    public var isComplete: Bool { state.withLock { $0.present.contains(0..<size) } }
    public var statistics: LazyBlobStatistics {
        state.withLock { s in
            var out = s.statistics
            out.presentBytes = s.present.count
            return out
        }
    }
    /// Whether `range` is present (verified and recorded) now.
    public func contains(_ range: Range<UInt64>) -> Bool { state.withLock { $0.present.contains(range) } }
    /// Whether every byte of `range` is present or in a request under way (it will be soon,
    /// unless that request fails).
    public func isPresentOrComing(_ range: Range<UInt64>) -> Bool {
        state.withLock { s in
            let missing = s.present.missing(in: range)
            if missing.isEmpty { return true }
            let inFlight = ByteRanges(s.inFlight)
            return missing.allSatisfy { inFlight.contains($0) }
        }
    }
    /// The ranges fetched on demand, in the order first fetched (the prefetch list).
    public var demandOrder: [Range<UInt64>] { state.withLock { $0.demandOrder } }
    /// The ranges present (verified, recorded).
    public var presentRanges: [Range<UInt64>] { state.withLock { $0.present.ranges } }
    /// Whether span digests are known (else `ensure` streams).
    public var hasSpans: Bool { state.withLock { $0.spans != nil } }

    /// The span table and digests that fetched bytes are verified against.
    public func setSpans(_ index: LayerIndex) {
        var spans: [Span]
        if index.contentSpans {
            // The chunks and the gaps between them tile the blob, so every byte is fetchable.
            spans = []
            var end: UInt64 = 0
            for i in 0..<index.spanCount {
                let r = index.spanRange(i)
                if spans.last?.range == r { continue }   // chunks sharing a member
                if r.lowerBound > end { spans.append(Span(range: end..<r.lowerBound, digest: nil)) }
                spans.append(Span(range: r, digest: nil))
                end = r.upperBound
            }
            if end < size { spans.append(Span(range: end..<size, digest: nil)) }
        } else {
            spans = (0..<index.spanCount).map { Span(range: index.spanRange($0), digest: index.spanDigest($0)) }
        }
        state.withLock { $0.spans = spans }
        state.broadcast()
    }

    // MARK: Fetching

    public func ensure(_ range: Range<UInt64>) throws {
        try ensure(range, purpose: .demand)
    }

    /// Makes `range` present, fetching what is missing.
    public func ensure(_ range: Range<UInt64>, purpose: FetchPurpose) throws {
        let range = min(range.lowerBound, size)..<min(range.upperBound, size)
        if range.isEmpty { return }
        let isRead = purpose == .demand || purpose == .readAhead
        let present = state.withLock { s in
            (s.present.contains(range), isRead && s.unrecorded.overlaps(range))
        }
        if present.0 {
            if present.1 { recordDemand(range) }
            return
        }
        if purpose == .demand { state.withLock { $0.demandWaiting += 1 } }
        defer {
            if purpose == .demand {
                state.withLock { $0.demandWaiting -= 1 }
                state.broadcast()
            }
        }
        while true {
            let next: Range<UInt64>? = try state.withLock { s in
                while true {
                    if s.present.contains(range) { return nil }
                    readRecords(s)   // another process may have fetched it
                    if s.present.contains(range) { return nil }
                    guard let spans = s.spans else {
                        if s.streamed >= range.upperBound { return nil }
                        if let error = s.streamError {
                            s.streamError = nil
                            throw error
                        }
                        if !s.streaming {
                            startStream(s)
                            if !s.streaming { continue }   // it failed to start: its error next
                        }
                        state.wait()
                        continue
                    }
                    if spans.isEmpty { throw IndexError("layer sha256:\(digestHex): its index has no span digests to verify fetched bytes with") }
                    if let request = plan(range, spans: spans, exact: purpose == .prefetch, s) {
                        s.inFlight.append(request)
                        return request
                    }
                    state.wait()   // what is missing is being fetched
                }
            }
            guard let request = next else { break }
            try fetch(request, purpose: purpose)
        }
        if isRead { recordDemand(range) }
    }

    /// Appends to `demandOrder` the spans `range` needed (not the whole request that fetched
    /// them, which `minimumRequest` may have stretched): the prefetch list then holds what a
    /// start read, at the index's span granularity.
    private func recordDemand(_ range: Range<UInt64>) {
        state.withLock { s in
            guard let spans = s.spans, !spans.isEmpty else { return }
            let first = spanIndex(containing: range.lowerBound, spans)
            var last = spanIndex(containing: range.upperBound - 1, spans)
            // Consecutive spans may share a byte (see `IndexFormat`): the earlier one suffices.
            if last > first && spans[last - 1].range.upperBound >= range.upperBound { last -= 1 }
            let needed = spans[first].range.lowerBound..<spans[last].range.upperBound
            if s.demandOrder.last != needed { s.demandOrder.append(needed) }
            s.unrecorded.remove(needed)
        }
    }

    /// The next request for `range`: the first missing span not being fetched and those after
    /// it, up to the end of what `range` needs and, unless `exact`, at least `minimumRequest`
    /// bytes. nil when everything missing is being fetched. A prefetch list's ranges are exact
    /// (they are what a start read, and the list's pieces are already merged and large).
    private func plan(_ range: Range<UInt64>, spans: [Span], exact: Bool, _ s: State) -> Range<UInt64>? {
        func free(_ i: Int) -> Bool {
            let r = spans[i].range
            return !s.present.contains(r) && !s.inFlight.contains { $0.overlaps(r) }
        }
        let first = spanIndex(containing: range.lowerBound, spans)
        var i = first
        while i < spans.count && spans[i].range.lowerBound < range.upperBound {
            if !s.present.contains(spans[i].range) {
                if free(i) { break }
            }
            i += 1
        }
        guard i < spans.count && spans[i].range.lowerBound < range.upperBound else { return nil }
        let start = spans[i].range.lowerBound
        var end = spans[i].range.upperBound
        var j = i + 1
        while j < spans.count && free(j) && (range.upperBound > end || !exact && end - start < Self.minimumRequest) {
            end = spans[j].range.upperBound
            j += 1
        }
        return start..<end
    }

    private func spanIndex(containing offset: UInt64, _ spans: [Span]) -> Int {
        var lo = 0, hi = spans.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if spans[mid].range.lowerBound <= offset { lo = mid } else { hi = mid - 1 }
        }
        return max(lo, 0)
    }

    /// Fetches `request` (planned and marked in flight). Each span is verified and written as
    /// soon as its last byte arrives, and made present at once: a read waiting for it goes on
    /// while the rest of the request is still on the way. Once the request ends (also when it
    /// failed part way), what was written is made durable and recorded.
    private func fetch(_ request: Range<UInt64>, purpose: FetchPurpose) throws {
        let spans = state.withLock { $0.spans } ?? []
        var next = spanIndex(containing: request.lowerBound, spans)
        var written: [Range<UInt64>] = []
        var mismatch: SpanMismatch?
        var writeError: IndexError?
        // `b`: the request's bytes that arrived so far (from its start again after a retry).
        func arrived(_ b: UnsafeRawBufferPointer) {
            guard mismatch == nil, writeError == nil else { return }
            let end = min(request.lowerBound + UInt64(b.count), request.upperBound)
            var newly: [Range<UInt64>] = []
            while next < spans.count && spans[next].range.upperBound <= end {
                let r = spans[next].range
                let i = next
                next += 1
                guard r.lowerBound >= request.lowerBound else { continue }
                let piece = UnsafeRawBufferPointer(rebasing: b[Int(r.lowerBound - request.lowerBound)..<Int(r.upperBound - request.lowerBound)])
                if let digest = spans[i].digest {
                    let h = SHA256Hasher()
                    h.update(piece)
                    guard h.finalize() == digest else {
                        mismatch = SpanMismatch(digestHex: digestHex, span: i, offset: r.lowerBound, fetched: true)
                        break
                    }
                }
                do { try data.writeAll(piece, at: r.lowerBound) } catch {
                    writeError = cacheBlobError(error)
                    break
                }
                newly.append(r)
            }
            guard !newly.isEmpty else { return }
            written += newly
            // A read that finds these present before the request ends must still go in
            // `demandOrder` (see `unrecorded`), as it would once the request ended.
            let read = purpose == .demand || purpose == .readAhead
            state.withLock { s in
                for r in newly {
                    s.present.insert(r)
                    if read { s.unrecorded.insert(r) }
                }
            }
            state.broadcast()
        }
        var failure: (any Error)?
        do {
            let count = try fetcher.fetch(request, arrived: arrived).count
            if count != Int(request.upperBound - request.lowerBound) {
                failure = IndexError("layer sha256:\(digestHex): fetching bytes \(request.lowerBound)..<\(request.upperBound): got \(count) bytes")
            }
        } catch {
            failure = IndexError("layer sha256:\(digestHex): fetching bytes \(request.lowerBound)..<\(request.upperBound)", wrapping: error)
        }
        if !written.isEmpty {
            do {
                try data.sync(dataOnly: true)
                try appendRecords(written)
            } catch let error as IndexError {
                failure = failure ?? error
            } catch {
                failure = failure ?? cacheBlobError(error)
            }
        }
        let received = failure == nil
        state.withLock { s in
            if let i = s.inFlight.firstIndex(of: request) { s.inFlight.remove(at: i) }
            let n = request.upperBound - request.lowerBound
            s.statistics.requests += 1
            if received { switch purpose {
            case .demand:
                s.statistics.demandBytes += n
                s.unrecorded.insert(request)
            case .readAhead:
                s.statistics.prefetchBytes += n
                s.unrecorded.insert(request)
            case .prefetch: s.statistics.prefetchBytes += n
            case .background: s.statistics.backgroundBytes += n
            } }
        }
        state.broadcast()
        if let mismatch {
            state.withLock { $0.statistics.verificationFailures += 1 }
            LayerCache.log(mismatch.description)
            throw mismatch
        }
        if let failure { throw failure }
        if let writeError { throw writeError }
    }

    /// A failure to write or sync the cache's blob file, naming it.
    private func cacheBlobError(_ error: any Error) -> IndexError {
        IndexError("layer sha256:\(digestHex): cache blob \(path)", wrapping: error)
    }

    // MARK: Streaming (no index yet)

    /// Starts one GET of the blob from where the streamed bytes end, on its own thread.
    private func startStream(_ s: State) {
        s.streaming = true
        s.statistics.requests += 1
        let from = s.streamed
        let started = detachThread { [self] in
            var at = from
            do {
                try fetcher.stream(from: from) { chunk in
                    let n = min(UInt64(chunk.count), size - at)
                    if n > 0 { try data.writeAll(UnsafeRawBufferPointer(rebasing: chunk[0..<Int(n)]), at: at) }
                    at += n
                    state.withLock { s in
                        s.streamed = at
                        s.statistics.streamedBytes += n
                    }
                    state.broadcast()
                }
                if at < size { throw IndexError("stream ended at \(at) of \(size) bytes") }
                state.withLock { $0.streaming = false }
            } catch {
                let failure = IndexError("layer sha256:\(digestHex): streaming the blob from offset \(at)", wrapping: error)
                state.withLock { s in
                    s.streaming = false
                    s.streamError = failure
                }
            }
            state.broadcast()
        }
        if !started {
            s.streaming = false
            s.streamError = IndexError("layer sha256:\(digestHex): no thread to stream the blob on")
        }
    }

    /// The indexer checked the whole blob's digest over the streamed bytes: they are recorded.
    func streamVerified() throws {
        let streamed = state.withLock { $0.streamed }
        guard streamed > 0 else { return }
        try data.sync(dataOnly: true)
        try appendRecords([0..<streamed])
        state.withLock { $0.present.insert(0..<streamed) }
    }

    // MARK: Background completion

    /// Fetches everything missing, a chunk at a time, yielding to `ensure` calls on demand
    /// between chunks; `bytesPerSecond` caps the rate. Returns when complete or `shouldStop`.
    public func fillRemaining(bytesPerSecond: UInt64?, shouldStop: () -> Bool) throws {
        guard hasSpans else { throw IndexError("layer sha256:\(digestHex): no span digests to verify a background fetch with") }
        let started = monotonicSeconds()
        var fetched: UInt64 = 0
        while !shouldStop() {
            let next: Range<UInt64>? = state.withLock { s in
                while s.demandWaiting > 0 { state.wait() }
                readRecords(s)
                let missing = s.present.missing(in: 0..<size).flatMap { m in
                    ByteRanges(s.inFlight).missing(in: m)
                }
                guard let first = missing.first else { return nil }
                return first.lowerBound..<min(first.upperBound, first.lowerBound + Self.backgroundChunk)
            }
            guard let chunk = next else {
                if isComplete { return }
                state.withLock { _ in state.wait() }   // the rest is in flight
                continue
            }
            try ensure(chunk, purpose: .background)
            fetched += chunk.upperBound - chunk.lowerBound
            if let rate = bytesPerSecond, rate > 0 {
                let due = Double(fetched) / Double(rate) - (monotonicSeconds() - started)
                if due > 0 { usleep(UInt32(min(due, 10) * 1_000_000)) }
            }
        }
    }

    /// Drops the data and the record (a blob that failed verification).
    public func discard() {
        state.withLock { s in
            _ = flock(record.rawValue, LOCK_EX)
            _ = ftruncate(record.rawValue, 0)
            _ = flock(record.rawValue, LOCK_UN)
            _ = ftruncate(data.rawValue, 0)
            _ = ftruncate(data.rawValue, off_t(size))
            s.present = ByteRanges()
            s.recordRead = 0
            s.streamed = 0
        }
        state.broadcast()
    }

    // MARK: The record

    private static let slot = 32
    private static let magic: UInt64 = 0x5347_4E52_4241_5453   // "STABRNGS"

    /// Reads records appended since the last read (by this process or another).
    private func readRecords(_ s: State) {
        guard let st = try? record.stat() else { return }
        let length = Int(st.st_size)
        if length < s.recordRead { s.recordRead = 0 }   // truncated (discarded) elsewhere
        let from = s.recordRead / Self.slot * Self.slot
        guard length - from >= Self.slot else { return }
        var buffer = [UInt8](repeating: 0, count: (length - from) / Self.slot * Self.slot)
        guard let n = try? buffer.withUnsafeMutableBytes({ try record.readFully(into: $0, at: UInt64(from)) }) else { return }
        buffer.withUnsafeBytes { b in
            var at = 0
            while at + Self.slot <= n {
                let start = b.u64(at), end = b.u64(at + 8)
                if b.u64(at + 24) == Self.magic, b.u64(at + 16) == Self.check(start, end), start < end, end <= size {
                    s.present.insert(start..<end)
                }
                at += Self.slot
            }
            s.recordRead = from + at
        }
    }

    private static func sameFile(_ fd: FileDescriptor, _ path: String) -> Bool {
        var st = stat()
        guard let open = try? fd.stat(), stat(path, &st) == 0 else { return false }
        return open.st_ino == st.st_ino && open.st_dev == st.st_dev
    }

    private static func check(_ start: UInt64, _ end: UInt64) -> UInt64 {
        withUnsafeBytes(of: (start.littleEndian, end.littleEndian)) { fileChecksum($0, skipping: 0..<0) }
    }

    /// Appends records for verified ranges whose data is synced, at a slot boundary, under flock.
    private func appendRecords(_ ranges: [Range<UInt64>]) throws {
        var bytes = [UInt8](repeating: 0, count: ranges.count * Self.slot)
        bytes.withUnsafeMutableBytes { b in
            for (i, r) in ranges.enumerated() {
                let at = i * Self.slot
                b.storeBytes(of: r.lowerBound.littleEndian, toByteOffset: at, as: UInt64.self)
                b.storeBytes(of: r.upperBound.littleEndian, toByteOffset: at + 8, as: UInt64.self)
                b.storeBytes(of: Self.check(r.lowerBound, r.upperBound).littleEndian, toByteOffset: at + 16, as: UInt64.self)
                b.storeBytes(of: Self.magic.littleEndian, toByteOffset: at + 24, as: UInt64.self)
            }
        }
        _ = flock(record.rawValue, LOCK_EX)
        defer { _ = flock(record.rawValue, LOCK_UN) }
        // Evicted meanwhile (the files at the paths are others now): recording would vouch for
        // bytes that are not in the file at `path`. This process keeps what it holds.
        guard Self.sameFile(data, path), Self.sameFile(record, recordPath) else { return }
        do {
            let length = UInt64(try record.stat().st_size)
            let at = (length + UInt64(Self.slot) - 1) / UInt64(Self.slot) * UInt64(Self.slot)
            try bytes.withUnsafeBytes { try record.writeAll($0, at: at) }
        } catch {
            throw IndexError("layer sha256:\(digestHex): cache record \(recordPath)", wrapping: error)
        }
    }
}

/// Runs `body` on a new detached thread; false (and `body` not run) if none can be started.
@discardableResult
func detachThread(_ body: @escaping @Sendable () -> Void) -> Bool {
    final class Box { let body: @Sendable () -> Void; init(_ body: @escaping @Sendable () -> Void) { self.body = body } }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var id = pthread_t()
    let rc = pthread_create(&id, nil, { context in
        Unmanaged<Box>.fromOpaque(context!).takeRetainedValue().body()
        return nil
    }, context)
    guard rc == 0 else {
        Unmanaged<Box>.fromOpaque(context).release()
        return false
    }
    pthread_detach(id)
    return true
}

/// Seconds on the monotonic clock.
func monotonicSeconds() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}
