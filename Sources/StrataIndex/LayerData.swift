import StrataCodec
import StrataSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Reads byte ranges of one layer's uncompressed tar stream: plain layers with pread, gzip and
/// zstd layers by decoding the one span that holds the range (through the shared span cache).
/// A zstd layer stored as a few huge frames cannot be entered in the middle of a frame, so it is
/// decoded once into a local copy in the cache directory and read from there.
public final class LayerData: Sendable {
    public let index: LayerIndex
    public let blob: LayerBlob
    let number: Int
    /// The span cache this layer decodes into (shared by the layers of a mount).
    public let cache: SpanCache
    private let blobFile: FileDescriptor
    private let copyPath: String
    /// The decoded copy, once opened (`plainFile`).
    private let copyFile = Locked<FileDescriptor?>(nil)
    /// Whether spans are too large to decode per read, so reads go to the decoded copy.
    private let needsCopy: Bool
    /// Span and offset of the latest read, to notice a reader moving through the stream in
    /// order, and the span whose successors were last queued for decoding (once per span).
    private let lastSpan = Atomic<Int>(-2)
    private let lastOffset = Atomic<UInt64>(0)
    private let readAheadFrom = Atomic<Int>(-1)
    /// Per-thread buffers for reads of plain layers and decoded copies: no allocation per request.
    private static let readBuffers = ThreadScratch()
    /// Frames larger than this are served from a local decoded copy.
    static let largestDirectSpan: UInt64 = 32 << 20

    public init(index: LayerIndex, blob: LayerBlob, number: Int, cache: SpanCache, copyPath: String) throws {
        self.index = index
        self.blob = blob
        self.number = number
        self.cache = cache
        self.copyPath = copyPath
        do { blobFile = try FileDescriptor.open(blob.path, O_RDONLY) } catch {
            throw IndexError("\(blob.name): \(error)")
        }
        needsCopy = index.compression == .zstd && (0..<index.checkpointCount).contains { i in
            index.spanEnd(i) - index.checkpointOffsets(i).uncompressed > LayerData.largestDirectSpan
        }
    }

    deinit {
        blobFile.close()
        copyFile.withLock { $0?.close() }
    }

    /// Hands `reply` the bytes [offset, offset+count) of the uncompressed stream. The range must
    /// lie inside the stream (the caller clamps reads to file sizes).
    public func read(offset: UInt64, count: Int, reply: (UnsafeRawBufferPointer) -> Void) throws {
        if count == 0 { reply(UnsafeRawBufferPointer(start: nil, count: 0)); return }
        if let file = try plainFile() {
            let buffer = UnsafeMutableRawBufferPointer(start: LayerData.readBuffers.get(count), count: count)
            let n = try file.readFully(into: buffer, at: offset)
            guard n == count else { throw IndexError("\(blob.name): short read at offset \(offset)") }
            reply(UnsafeRawBufferPointer(buffer))
            return
        }
        let span = try decodedSpan(index.checkpointIndex(containing: offset), at: offset)
        let within = Int(offset - span.start)
        if within + count <= span.bytes.count {
            // The common case: one span holds the range; no copy.
            reply(UnsafeRawBufferPointer(rebasing: span.bytes[within..<(within + count)]))
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        defer { buffer.deallocate() }
        try copy(offset: offset, into: buffer)
        reply(UnsafeRawBufferPointer(buffer))
    }

    /// Copies [offset, offset+buffer.count) into the buffer, across spans.
    public func copy(offset: UInt64, into buffer: UnsafeMutableRawBufferPointer) throws {
        if let file = try plainFile() {
            guard try file.readFully(into: buffer, at: offset) == buffer.count else {
                throw IndexError("\(blob.name): short read at offset \(offset)")
            }
            return
        }
        var done = 0
        while done < buffer.count {
            let position = offset + UInt64(done)
            let span = try decodedSpan(index.checkpointIndex(containing: position), at: position)
            let within = Int(position - span.start)
            let n = min(buffer.count - done, span.bytes.count - within)
            guard n > 0 else { throw IndexError("\(blob.name): read past the end of the stream at \(position)") }
            UnsafeMutableRawBufferPointer(rebasing: buffer[done..<(done + n)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: span.bytes[within..<(within + n)]))
            done += n
        }
    }

    private func decodedSpan(_ i: Int, at offset: UInt64) throws -> DecodedSpan {
        noteRead(span: i, at: offset)
        return try cache.span(SpanCache.Key(layer: number, span: i)) { try decode(span: i) }
    }

    /// A read that moves forward from the previous one, within its span or into the next, is
    /// sequential (a tar walk reads each layer's stream mostly in order): the next spans are
    /// decoded in the background while the reader consumes this one, so inflate overlaps the
    /// FUSE round trips, and a span the reader has left is done with. Reads in random order
    /// rarely move forward inside one span, so they read nothing ahead. The three atomics are
    /// not updated together: a race costs at most a missed or an extra read-ahead.
    private func noteRead(span i: Int, at offset: UInt64) {
        let previous = lastSpan.exchange(i, ordering: .relaxed)
        let previousOffset = lastOffset.exchange(offset, ordering: .relaxed)
        if previous == i - 1 { cache.markPassed(SpanCache.Key(layer: number, span: i - 1)) }
        guard previous == i || previous == i - 1, offset > previousOffset,
              readAheadFrom.exchange(i, ordering: .relaxed) != i else { return }
        let end = min(i + cache.readAhead, index.checkpointCount - 1)
        guard end > i else { return }
        for ahead in (i + 1)...end {
            cache.prefetch(SpanCache.Key(layer: number, span: ahead)) { [self] in try decode(span: ahead) }
        }
    }

    private func decode(span i: Int) throws -> DecodedSpan {
        let checkpoint = try index.checkpoint(i)
        let want = Int(index.spanEnd(i) - checkpoint.uncompressedOffset)
        let span = cache.newSpan(start: checkpoint.uncompressedOffset, count: want)
        let decoder = LayerData.decoders.take(index.compression)
        defer { LayerData.decoders.give(decoder, index.compression) }
        let n: Int
        do {
            n = try decoder.decode(file: blobFile, from: checkpoint, skip: 0,
                                   into: UnsafeMutableRawBufferPointer(rebasing: span.bytes[0..<want]))
        } catch {
            throw IndexError("\(blob.name): span \(i) at compressed offset \(checkpoint.compressedOffset): \(error)")
        }
        guard n == want else {
            throw IndexError("\(blob.name): span \(i) decoded to \(n) bytes, expected \(want) (blob changed?)")
        }
        return span
    }

    /// The file to pread from directly: the blob of a plain tar layer, or the decoded copy of a
    /// zstd layer with huge frames (made on first use). nil when spans are decoded instead.
    private func plainFile() throws -> FileDescriptor? {
        switch index.compression {
        case .none: return blobFile
        case .gzip: return nil
        case .zstd:
            if !needsCopy { return nil }
            return try copyFile.withLock { copyFile in
                if let copyFile { return copyFile }
                if !FileIO.exists(copyPath) { try materialize() }
                let fd: FileDescriptor
                do { fd = try FileDescriptor.open(copyPath, O_RDONLY) } catch {
                    throw IndexError("\(blob.name): cannot open decoded copy \(copyPath): \(error)")
                }
                guard (try? fd.stat().st_size).map({ UInt64($0) }) == index.uncompressedSize else {
                    fd.close()
                    unlink(copyPath)
                    throw IndexError("\(blob.name): decoded copy \(copyPath) has the wrong size; removed")
                }
                copyFile = fd
                return fd
            }
        }
    }

    /// Span decoders keep their inflate state and input buffer between spans; a pool shares
    /// them between the FUSE worker threads (a decoder is used by one thread at a time).
    static let decoders = DecoderPool()

    private func materialize() throws {
        let dir = String(copyPath[..<(copyPath.lastIndex(of: "/") ?? copyPath.startIndex)])
        try FileIO.makeDirectories(dir)
        let temp = "\(copyPath).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        let out = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        do {
            let decoder = IndexingDecoder(compression: .zstd, file: blobFile, blobSize: index.blobSize,
                                          checkpointSpacing: UInt64.max, onCompressedBytes: { _ in })
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            var position: UInt64 = 0
            while true {
                let n = try decoder.read(into: buffer)
                if n == 0 { break }
                try out.writeAll(UnsafeRawBufferPointer(rebasing: buffer[0..<n]), at: position)
                position += UInt64(n)
            }
            try out.sync()
            out.close()
        } catch {
            out.close()
            unlink(temp)
            throw IndexError("\(blob.name): cannot decode into \(copyPath): \(error)")
        }
        guard rename(temp, copyPath) == 0 else {
            let code = errno
            unlink(temp)
            throw IndexError("\(blob.name): \(SystemError(code: code, operation: "rename", path: copyPath))")
        }
    }
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
