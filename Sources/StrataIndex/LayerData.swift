import StrataCodec
import StrataSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reads byte ranges of one layer's uncompressed tar stream: plain layers with pread, gzip and
/// zstd layers by decoding the one span that holds the range (through the shared span cache).
/// A zstd frame too large to decode per read cannot be entered in its middle: its part of the
/// stream is read from the layer's re-encoded copy (small frames, made while indexing) instead.
///
/// Every span is verified against the index's span digest before any of its bytes is served:
/// its compressed bytes are read once, hashed and decoded from memory, so a decoder reads
/// nothing unverified (a span decoded in part keeps its verified compressed bytes with its
/// decoder, `VerifiedSpan`). Plain tar layers verify each 1 MiB piece the first time a read
/// touches it (`verifiedPieces` remembers which). A mismatch (`SpanMismatch`: the blob changed
/// after it was indexed) fails the read, logged, and is never served.
///
/// A damaged index window or copy frame (`IndexDamage`) is repaired while serving: the layer's
/// index and copy are rebuilt from the blob (by `indexCache`), the new index replaces the old,
/// and the read is retried. Without a cache to rebuild in, the index is removed so the next
/// mount rebuilds it, and the read fails.
public final class LayerData: Sendable {
    /// The layer's index (a rebuilt one after a repair: same checkpoints, sound bytes).
    public var index: LayerIndex { state.withLock { $0.index } }
    public let blob: LayerBlob
    let number: Int
    /// The span cache this layer decodes into (shared by the layers of a mount).
    public let cache: SpanCache
    private let blobFile: BlobFile
    private let copyPath: String
    private let indexCache: LayerCache?
    /// A replaced index's copy stays open until the end: a reader may still be reading it.
    private struct State { var index: LayerIndex; var copyFile: FileDescriptor?; var retired: [FileDescriptor] = []; var repairs = 0 }
    private let state: Locked<State>
    /// Serialises repairs: a thread that finds damage already repaired only retries.
    private let repairLock = Lock()
    /// The readers moving through this layer's stream: each keeps its span and read-ahead.
    private let streams = Locked(ReadStreams())
    /// Plain layers: one bit per 1 MiB piece verified against its digest.
    private let verifiedPieces: Locked<[UInt64]>
    /// Per-thread buffers for reads of plain layers and of copy frames: no allocation per request.
    private static let readBuffers = ThreadScratch()
    /// Buffers for reads across two spans, a couple kept for the next (not one per thread:
    /// eight workers each keeping the largest read's buffer added 6 MB to a read-all's peak).
    private static let crossingBuffers = SpanBuffers(spareLimit: 2, budget: 2 << 20)
    /// Set when a check of the whole blob failed (`fail`): every read fails from then on.
    private let failed = Atomic<Bool>(false)
    private let failure = Locked<String?>(nil)

    /// `copyPath`: the layer's re-encoded copy (read only if the index lists copy frames).
    /// `indexCache`: where a damaged index is rebuilt while serving (nil: reads fail instead).
    public init(index: LayerIndex, blob: LayerBlob, number: Int, cache: SpanCache, copyPath: String,
                indexCache: LayerCache? = nil) throws {
        state = Locked(State(index: index))
        self.blob = blob
        self.number = number
        self.cache = cache
        self.copyPath = copyPath
        self.indexCache = indexCache
        verifiedPieces = Locked([UInt64](repeating: 0, count: index.compression == .none ? (index.spanCount + 63) / 64 : 0))
        blobFile = try blob.open(checkWholeFile: false)
        // A lazy blob verifies what it fetches against this index's span digests.
        if let lazy = blob.lazy, !lazy.hasSpans { lazy.setSpans(index) }
    }

    deinit {
        blobFile.file.close()
        state.withLock { s in
            s.copyFile?.close()
            s.retired.forEach { $0.close() }
        }
    }

    /// The layer failed a check of its whole blob (its TOC lied about its stream, or its
    /// diff_id is not the config's): its reads fail from now on, with `message` as the cause.
    public func fail(_ message: String) {
        failure.withLock { $0 = $0 ?? message }
        failed.store(true, ordering: .releasing)
    }

    /// Why the layer's reads fail, when they do (`fail`).
    public var failureMessage: String? { failed.load(ordering: .acquiring) ? failure.withLock { $0 } : nil }

    private func requireNotFailed() throws {
        guard failed.load(ordering: .acquiring) else { return }
        throw IndexError("\(blob.name): \(failure.withLock { $0 } ?? "failed")")
    }

    /// How many times this layer's index was rebuilt while serving (tests, statistics).
    public var repairs: Int { state.withLock { $0.repairs } }

    /// Hands `reply` the bytes [offset, offset+count) of the uncompressed stream. The range must
    /// lie inside the stream (the caller clamps reads to file sizes).
    public func read(offset: UInt64, count: Int, reply: (UnsafeRawBufferPointer) -> Void) throws {
        try requireNotFailed()
        if count == 0 { reply(UnsafeRawBufferPointer(start: nil, count: 0)); return }
        let index = self.index
        if index.compression == .none {
            let buffer = UnsafeMutableRawBufferPointer(start: LayerData.readBuffers.get(count), count: count)
            try readPlain(into: buffer, at: offset, index: index)
            reply(UnsafeRawBufferPointer(buffer))
            return
        }
        let first = index.checkpointIndex(containing: offset)
        let key = SpanCache.Key(layer: number, span: first)
        cache.beginRead(key)
        defer { cache.endRead(key) }
        noteRead(span: first, offset: offset, count: count, index: index)
        let span = try decodedSpan(first, upTo: offset + UInt64(count))
        let within = Int(offset - span.start)
        if within + count <= span.count {
            try ensureDecoded(span, first, upTo: within + count)
            // The common case: one span holds the range; no copy.
            reply(UnsafeRawBufferPointer(rebasing: span.bytes[within..<(within + count)]))
            return
        }
        // Across spans: copied into a recycled buffer (a fresh allocation per read was faulted
        // in page by page: a quarter of a python start's page faults).
        guard let lease = LayerData.crossingBuffers.lease(count) else { throw IndexError("\(blob.name): out of memory for a read of \(count) bytes") }
        defer { LayerData.crossingBuffers.giveBack(lease, written: count) }
        let buffer = UnsafeMutableRawBufferPointer(rebasing: lease.mapping[0..<count])
        try copy(offset: offset, into: buffer)
        reply(UnsafeRawBufferPointer(buffer))
    }

    /// Copies [offset, offset+buffer.count) into the buffer, across spans.
    public func copy(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        try requireNotFailed()
        let index = self.index
        if index.compression == .none {
            try readPlain(into: buffer, at: offset, index: index)
            return
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let i = index.checkpointIndex(containing: position)
            let span = try decodedSpan(i, upTo: offset + UInt64(buffer.count))
            let within = Int(position - span.start)
            let n = min(buffer.count - done, span.count - within)
            guard n > 0 else { throw IndexError("\(blob.name): read past the end of the stream at \(position)") }
            try ensureDecoded(span, i, upTo: within + n)
            UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: span.bytes[within..<(within + n)]))
            done += n
        }
    }

    /// A plain layer's bytes: pieces not yet verified are read whole, verified and served from
    /// memory; verified ones straight from the file.
    private func readPlain(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64, index: LayerIndex) throws {
        if buffer.count == 0 { return }
        try requireSpans(index)
        let last = offset + UInt64(buffer.count) - 1
        let first = index.spanIndex(containing: offset), end = index.spanIndex(containing: last) + 1
        let unverified = verifiedPieces.withLock { bits in (first..<end).contains { bits[$0 >> 6] & (1 << UInt64($0 & 63)) == 0 } }
        if !unverified {
            guard try blobFile.readFully(into: buffer, at: offset) == buffer.count else {
                throw IndexError("\(blob.name): short read at offset \(offset)")
            }
            return
        }
        let whole = index.spanRange(first).lowerBound..<index.spanRange(end - 1).upperBound
        let pieces = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(whole.upperBound - whole.lowerBound), alignment: 16)
        defer { pieces.deallocate() }
        guard try blobFile.readFully(into: pieces, at: whole.lowerBound) == pieces.count else {
            throw IndexError("\(blob.name): short read at offset \(whole.lowerBound)")
        }
        for piece in first..<end {
            let r = index.spanRange(piece)
            try verify(span: piece, UnsafeRawBufferPointer(rebasing: pieces[Int(r.lowerBound - whole.lowerBound)..<Int(r.upperBound - whole.lowerBound)]),
                       index: index)
        }
        verifiedPieces.withLock { bits in for piece in first..<end { bits[piece >> 6] |= 1 << UInt64(piece & 63) } }
        let from = Int(offset - whole.lowerBound)
        buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: pieces[from..<(from + buffer.count)]))
    }

    /// Nothing is served unverified: not from an index without span digests.
    private func requireSpans(_ index: LayerIndex) throws {
        guard index.spanCount > 0 else { throw IndexError("\(blob.name): index \(index.file.path) has no span digests to verify the blob with") }
    }

    /// Checks span `j`'s compressed bytes against its digest.
    func verify(span j: Int, _ bytes: UnsafeRawBufferPointer, index: LayerIndex) throws {
        try check(span: j, digest: SpanVerifier.hash(bytes), index: index)
    }

    private func check(span j: Int, digest: [UInt8], index: LayerIndex) throws {
        guard digest == index.spanDigest(j) else {
            let mismatch = SpanMismatch(digestHex: blob.digestHex, span: j, offset: index.spanRange(j).lowerBound, fetched: false)
            LayerCache.log("\(mismatch) (blob \(blob.place))")
            throw mismatch
        }
    }

    /// The compressed bytes of the span that starts at checkpoint `i`, fetched first if the
    /// blob is lazy (`purpose`: what the fetch counts as), read into memory of their own.
    /// Not yet verified: the caller checks them (`check`) before serving what they decode to.
    func compressedSpan(_ i: Int, index: LayerIndex, purpose: FetchPurpose) throws -> (bytes: VerifiedSpan, span: Int) {
        try requireSpans(index)
        let j = index.span(forCheckpoint: i)
        let range = index.spanRange(j)
        let compressed = VerifiedSpan(count: Int(range.upperBound - range.lowerBound), at: range.lowerBound)
        let read: Int
        do {
            try blob.lazy?.ensure(range, purpose: purpose)
            read = try blobFile.readFully(into: compressed.bytes, at: range.lowerBound)
        } catch let mismatch as SpanMismatch {
            throw mismatch
        } catch {
            throw IndexError("\(blob.name): span \(i) at compressed offset \(range.lowerBound)", wrapping: error)
        }
        guard read == compressed.bytes.count else {
            throw IndexError("\(blob.name): blob ends inside span \(j) at compressed offset \(range.lowerBound)")
        }
        return (compressed, j)
    }

    /// Span `i`, from the cache or decoded, at least up to stream offset `end` if it is decoded
    /// now (a cached span may hold less: see `ensureDecoded`).
    private func decodedSpan(_ i: Int, upTo end: UInt64) throws -> DecodedSpan {
        try cache.span(SpanCache.Key(layer: number, span: i)) { try decodeRepairing(span: i, upTo: end, purpose: .demand) }
    }

    /// A read inflates its span from the checkpoint only up to the bytes it asks for, rounded
    /// up to this; the decoder stays with the span and goes on from there for a later read
    /// further in. A program's first start reads a few small files per span: it no longer pays
    /// for the whole span each time. Read-ahead decodes whole spans. A read of a small
    /// file is clamped to its end, so a small step keeps the decode from running on into the
    /// next files (128 KiB inflated 2 MB more of a python start's 43).
    static let partialGranule = 16 << 10

    /// Decodes span `i` (up to stream offset `end`, nil: whole); damage in the index or the copy
    /// is repaired once and the decode retried.
    private func decodeRepairing(span i: Int, upTo end: UInt64?, purpose: FetchPurpose) throws -> DecodedSpan {
        let index = self.index
        do {
            return try decode(span: i, index: index, upTo: end, purpose: purpose)
        } catch let damage as IndexDamage {
            try repair(damaged: index, damage)
            return try decode(span: i, index: self.index, upTo: end, purpose: purpose)
        }
    }

    /// Makes sure the span's bytes `[0, need)` are decoded, going on where its decode stopped.
    private func ensureDecoded(_ span: DecodedSpan, _ i: Int, upTo need: Int) throws {
        if span.filled >= need { return }
        try span.extending.withLock {
            let have = span.filled
            if have >= need { return }
            let target = Self.partialTarget(need, count: span.count)
            let decoder: SpanDecoder
            if let kept = span.continuation {
                decoder = kept
            } else {
                // The kept decoder failed before: start again at the checkpoint (its bytes
                // verified again), dropping what is there.
                let (compressed, j) = try compressedSpan(i, index: index, purpose: .demand)
                try verify(span: j, UnsafeRawBufferPointer(compressed.bytes), index: index)
                span.source = compressed
                decoder = SpanDecoder(compression: index.compression)
                try begin(decoder, span: i, index: index, from: compressed)
                try skip(decoder, have)
            }
            span.continuation = nil
            span.willWrite(upTo: target)
            let n: Int
            do { n = try decoder.decodeMore(into: UnsafeMutableRawBufferPointer(rebasing: span.bytes[have..<target])) } catch {
                throw IndexError("\(blob.name): span \(i) from uncompressed offset \(span.start + UInt64(have))", wrapping: error)
            }
            guard n == target - have else {
                throw IndexError("\(blob.name): span \(i) decoded to \(have + n) bytes, expected \(target) (blob changed?)")
            }
            span.setFilled(target)
            cache.countInflated(n)
            if target < span.count { span.continuation = decoder } else { span.source = nil }
        }
        cache.grew(SpanCache.Key(layer: number, span: i), span)
    }

    /// How far to decode for a read that needs the span's first `need` bytes.
    private static func partialTarget(_ need: Int, count: Int) -> Int {
        min(count, (need + partialGranule - 1) / partialGranule * partialGranule)
    }

    /// Starts `decoder` at span `i`'s checkpoint, reading the span's verified bytes in memory.
    private func begin(_ decoder: SpanDecoder, span i: Int, index: LayerIndex, from compressed: VerifiedSpan) throws {
        let checkpoint = try checkpointWithWindow(i, index: index)
        do { try decoder.begin(blob: compressed.blob, from: checkpoint) } catch {
            throw IndexError("\(blob.name): span \(i) at compressed offset \(checkpoint.compressedOffset)", wrapping: error)
        }
    }

    /// Decodes and drops `count` bytes.
    private func skip(_ decoder: SpanDecoder, _ count: Int) throws {
        let scratch = UnsafeMutableRawBufferPointer(start: LayerData.readBuffers.get(Self.partialGranule), count: Self.partialGranule)
        var left = count
        while left > 0 {
            let n = try decoder.decodeMore(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<min(left, scratch.count)]))
            guard n > 0 else { throw IndexError("\(blob.name): stream ends inside a span") }
            left -= n
        }
    }

    /// Rebuilds the index and copy of this layer from the blob, unless another thread already
    /// replaced `damaged`. The rebuilt index must describe the same stream (it is deterministic).
    private func repair(damaged: LayerIndex, _ damage: IndexDamage) throws {
        try repairLock.withLock { try rebuild(damaged: damaged, damage) }
    }

    private func rebuild(damaged: LayerIndex, _ damage: IndexDamage) throws {
        if self.index !== damaged { return }
        guard let indexCache else {
            LayerCache.log("\(blob.name): \(damage); index removed, the next mount rebuilds it")
            unlink(damaged.file.path)
            throw damage
        }
        LayerCache.log("\(blob.name): \(damage); rebuilding its index from the blob")
        let rebuilt: LayerIndex
        // Reopened as a mount opens it: header and checkpoints in memory, windows read when used.
        do { rebuilt = try LayerIndex(path: indexCache.build(blob).file.path, verify: false) } catch {
            LayerCache.log("\(blob.name): rebuilding its index failed: \(error)")
            unlink(damaged.file.path)
            throw damage
        }
        guard rebuilt.checkpointCount == damaged.checkpointCount, rebuilt.uncompressedSize == damaged.uncompressedSize else {
            throw IndexError("\(blob.name): rebuilt index describes another stream")
        }
        state.withLock { s in
            if let file = s.copyFile { s.retired.append(file) }
            s.index = rebuilt
            s.copyFile = nil
            s.repairs += 1
        }
    }

    /// Finds the reader's stream (`ReadStreams`), tells the cache which span it is on now, and
    /// queues the next spans for decoding in the background when it is streaming, so that
    /// inflating overlaps the FUSE round trips and the reader's own work.
    private func noteRead(span i: Int, offset: UInt64, count: Int, index: LayerIndex) {
        let spanBytes = index.uncompressedSize / UInt64(max(index.checkpointCount, 1))
        let move = streams.withLock { $0.note(offset: offset, count: count, span: i, spanBytes: spanBytes) }
        if move.left != nil || move.entered != nil {
            cache.move(left: move.left.map { SpanCache.Key(layer: number, span: $0) },
                       entered: move.entered.map { SpanCache.Key(layer: number, span: $0) })
        }
        guard let from = move.readAheadFrom else { return }
        // A reader whose requests are as large as a span (the kernel's read-ahead through a large
        // file) would be at the next span with its next request: ahead by three of them.
        let depth = cache.readAhead == 0 ? 0 : max(cache.readAhead, Int((UInt64(count) * 3 + spanBytes - 1) / spanBytes))
        let end = min(from + depth, index.checkpointCount - 1)
        guard end > from else { return }
        // A lazy blob's read-ahead decodes only spans already fetched, until the stream has
        // read `lazyReadAheadAfter`: a program mapping a library reads it densely, past a span,
        // and stops at its end; fetching the span after it cost a python start 3–5 MB of
        // a 27 MB fetch. A long stream (a copy, a tar walk) gets its spans fetched ahead.
        let fetching = blob.lazy == nil || move.streamRead >= Self.lazyReadAheadAfter
        for ahead in (from + 1)...end {
            if !fetching, let lazy = blob.lazy, index.spanCount > 0, index.copyFrame(ahead) == nil,
               !lazy.contains(index.spanRange(index.span(forCheckpoint: ahead))) { break }
            cache.prefetch(SpanCache.Key(layer: number, span: ahead)) { [self] in try decodeRepairing(span: ahead, upTo: nil, purpose: .readAhead) }
        }
    }

    /// How much a stream reads before its read-ahead may fetch from a registry (see `noteRead`).
    static let lazyReadAheadAfter: UInt64 = 16 << 20

    /// Decodes span `i` from its checkpoint up to stream offset `end` (rounded up to
    /// `partialGranule`; nil: the whole span). A span left partial keeps its decoder and its
    /// verified compressed bytes. `purpose`: what a lazy blob counts the fetch of a missing
    /// span as (read-ahead is prefetch).
    private func decode(span i: Int, index: LayerIndex, upTo end: UInt64?, purpose: FetchPurpose) throws -> DecodedSpan {
        if let frame = index.copyFrame(i) { return try decodeCopy(span: i, frame: frame, index: index) }
        if index.contentSpans { return try decodeChunk(span: i, index: index, purpose: purpose) }
        let checkpoint = try checkpointWithWindow(i, index: index, purpose: purpose)
        let want = Int(index.spanEnd(i) - checkpoint.uncompressedOffset)
        let target = end.map { Self.partialTarget(Int(clamping: $0 &- checkpoint.uncompressedOffset), count: want) } ?? want
        let (compressed, j) = try compressedSpan(i, index: index, purpose: purpose)
        let span = cache.newSpan(start: checkpoint.uncompressedOffset, count: want, partial: target < want)
        // Hashed on the verifier's thread while decoding here; published only once it matches.
        let job = SpanVerifier.shared.start(UnsafeRawBufferPointer(compressed.bytes))
        let decoder = LayerData.decoders.take(index.compression)
        var keep = false
        defer { if !keep { LayerData.decoders.give(decoder, index.compression) } }
        span.willWrite(upTo: target)
        let decoded: Result<Int, any Error> = Result {
            try decoder.begin(blob: compressed.blob, from: checkpoint)
            return try decoder.decodeMore(into: UnsafeMutableRawBufferPointer(rebasing: span.bytes[0..<target]))
        }
        try check(span: j, digest: SpanVerifier.shared.digest(of: job), index: index)
        let n: Int
        do { n = try decoded.get() } catch {
            throw IndexError("\(blob.name): span \(i) at compressed offset \(checkpoint.compressedOffset)", wrapping: error)
        }
        guard n == target else {
            throw IndexError("\(blob.name): span \(i) decoded to \(n) bytes, expected \(target) (blob changed?)")
        }
        span.setFilled(target)
        if target < want {
            span.continuation = decoder
            span.source = compressed
            keep = true
        }
        return span
    }

    /// Span `i` of an index built from a TOC: chunk `i`, decoded whole from its member or
    /// frame (in memory), hashed and compared with the TOC's chunk digest before any of it is
    /// served. A mismatch is logged once with the blob and offsets; a lazy blob's fetched bytes
    /// are dropped (they could not be checked as they came: see `LazyBlob`).
    private func decodeChunk(span i: Int, index: LayerIndex, purpose: FetchPurpose) throws -> DecodedSpan {
        let start = index.checkpointOffsets(i).uncompressed
        let want = Int(index.spanEnd(i) - start)
        let skip = index.contentSkip(i)
        let (compressed, j) = try compressedSpan(i, index: index, purpose: purpose)
        let span = cache.newSpan(start: start, count: want)
        let member = UnsafeRawBufferPointer(compressed.bytes)
        let decoder = IndexingDecoder(compression: index.compression, blob: BlobFile(bytes: member, at: 0),
                                      blobSize: UInt64(member.count), checkpointSpacing: .max, onCompressedBytes: { _ in })
        let range = index.spanRange(j)
        do {
            if skip > 0 { try skipDecoded(decoder, skip) }
            var filled = 0
            while filled < want {
                let n = try decoder.read(into: UnsafeMutableRawBufferPointer(rebasing: span.bytes[filled..<want]))
                guard n > 0 else { throw IndexError("member ends after \(filled) of the chunk's \(want) bytes") }
                filled += n
            }
        } catch {
            LayerCache.log("\(blob.name): chunk \(j) at compressed offset \(range.lowerBound) (stream offset \(start)) cannot be decoded: \(error) (blob \(blob.place))")
            blob.lazy?.discard()
            throw SpanMismatch(digestHex: blob.digestHex, span: j, offset: range.lowerBound, fetched: blob.lazy != nil)
        }
        guard SpanVerifier.hash(UnsafeRawBufferPointer(rebasing: span.bytes[0..<want])) == index.spanDigest(j) else {
            LayerCache.log("\(blob.name): chunk \(j) at compressed offset \(range.lowerBound) (stream offset \(start)) does not match its TOC digest (blob \(blob.place))")
            blob.lazy?.discard()
            throw SpanMismatch(digestHex: blob.digestHex, span: j, offset: range.lowerBound, fetched: blob.lazy != nil)
        }
        span.setFilled(want)
        return span
    }

    private func skipDecoded(_ decoder: IndexingDecoder, _ count: UInt64) throws {
        var left = Int(count)
        var scratch = [UInt8](repeating: 0, count: min(left, 64 << 10))
        while left > 0 {
            let n = try scratch.withUnsafeMutableBytes { try decoder.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<min(left, $0.count)])) }
            guard n > 0 else { throw IndexError("member ends inside the bytes before its chunk") }
            left -= n
        }
    }

    /// Span `i` from its frame in the re-encoded copy: read whole, decoded and checksum-checked.
    private func decodeCopy(span i: Int, frame: (offset: UInt64, size: Int), index: LayerIndex) throws -> DecodedSpan {
        let start = index.checkpointOffsets(i).uncompressed
        let want = Int(index.spanEnd(i) - start)
        let file = try copyFile(for: index)
        let compressed = UnsafeMutableRawBufferPointer(start: LayerData.readBuffers.get(frame.size), count: frame.size)
        let n: Int
        do { n = try file.readFully(into: compressed, at: frame.offset) } catch {
            throw IndexError("\(blob.name): re-encoded copy \(copyPath)", wrapping: error)
        }
        guard n == frame.size else { throw IndexDamage(path: copyPath, "frame \(i) at \(frame.offset) is truncated") }
        let span = cache.newSpan(start: start, count: want)
        do {
            try LayerData.frameDecoders.withDecoder {
                try $0.decode(UnsafeRawBufferPointer(compressed), into: UnsafeMutableRawBufferPointer(rebasing: span.bytes[0..<want]),
                              offset: frame.offset)
            }
        } catch let error as CodecError {
            throw IndexDamage(path: copyPath, "frame \(i): \(error)")
        }
        span.setFilled(want)
        return span
    }

    /// The copy of the index it belongs to, opened on first use and checked against its size.
    private func copyFile(for index: LayerIndex) throws -> FileDescriptor {
        if let file = state.withLock({ $0.index === index ? $0.copyFile : nil }) { return file }
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(copyPath, O_RDONLY) } catch {
            throw IndexDamage(path: copyPath, "re-encoded copy cannot be opened: \(error)")
        }
        guard (try? fd.stat().st_size).map({ UInt64($0) }) == index.copySize else {
            fd.close()
            throw IndexDamage(path: copyPath, "re-encoded copy has the wrong size")
        }
        let kept = state.withLock { s -> FileDescriptor? in
            guard s.index === index else { return nil }
            if let other = s.copyFile { return other }
            s.copyFile = fd
            return fd
        }
        if kept != fd { fd.close() }
        guard let kept else { throw IndexDamage(path: copyPath, "index replaced while reading") }
        return kept
    }

    /// Span decoders keep their inflate state and input buffer between spans; a pool shares
    /// them between the FUSE worker threads (a decoder is used by one thread at a time).
    static let decoders = DecoderPool()

    /// Decoders for copy frames, shared like `decoders`.
    static let frameDecoders = FrameDecoderPool()
}

final class DecoderPool: Sendable {
    private let idle = Locked<[LayerCompression: [SpanDecoder]]>([:])

    func take(_ compression: LayerCompression) -> SpanDecoder {
        idle.withLock { $0[compression]?.popLast() } ?? SpanDecoder(compression: compression)
    }

    func give(_ decoder: SpanDecoder, _ compression: LayerCompression) {
        idle.withLock { idle in
            if idle[compression, default: []].count < 16 { idle[compression, default: []].append(decoder) }
        }
    }
}

final class FrameDecoderPool: Sendable {
    private let idle = Locked<[ZstdFrameDecoder]>([])

    func withDecoder<T>(_ body: (ZstdFrameDecoder) throws -> T) throws -> T {
        let decoder = try idle.withLock { $0.popLast() } ?? ZstdFrameDecoder()
        defer { idle.withLock { if $0.count < 16 { $0.append(decoder) } } }
        return try body(decoder)
    }
}
