import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Decodes a layer blob once, front to back, at index time: yields the uncompressed stream,
/// hands every compressed byte to `onCompressedBytes` (for the digest), verifies each gzip
/// member's CRC-32 and size, and records `checkpoints` from which `SpanDecoder` can resume.
/// The work is done by a `GzipIndexer` or a `ZstdIndexer`; this type hands out their output.
///
/// Checkpoints (uncompressed offsets strictly increasing, the first at 0):
/// - gzip: one at each member start, `compressedOffset` = the first byte of the member's raw
///   deflate data (just past its gzip header), bits 0, window empty; and inside a member one at
///   the first deflate block boundary after each `checkpointSpacing` bytes of output since the
///   previous checkpoint: `compressedOffset` = the first byte inflate has not taken at all;
///   `bits` (0...7) = how many high bits of the byte at `compressedOffset - 1` are still unread
///   (0: start at `compressedOffset` exactly); `window` = the member's last ≤ 32 KiB of output.
///   An empty window therefore always means a member start.
/// - zstd: one at each frame start (`compressedOffset` = the frame's magic number).
/// - none: the one at 0.
/// A member or frame that produces nothing gets no checkpoint of its own: a start at the same
/// uncompressed offset as the previous checkpoint replaces it, so every checkpoint produces bytes.
///
/// gzip members are inflated by isa-l (several times faster than zlib), checkpoints staying
/// zlib's (see GzipIndexerIsal.swift). `STRATA_GZIP_INFLATE=zlib` in the environment selects
/// zlib throughout.
public final class IndexingDecoder {
    public let compression: LayerCompression
    public var checkpoints: [Checkpoint] { state.checkpoints }

    /// Hands each window of the checkpoints from `first` on to `body`, made sparse
    /// (`SparseWindow`), and empties it in the decoder; returns where the next call starts.
    /// Only checkpoints that can no longer change are taken: all but the last, or all once
    /// `finish` has run (`all`). An indexer that stores windows as they come does not hold
    /// every 32 KiB window of a long layer at once.
    public func takeWindows(from first: Int, all: Bool = false, _ body: (Int, [UInt8]) throws -> Void) throws -> Int {
        let end = all ? state.checkpoints.count : state.checkpoints.count - 1
        var i = first
        while i < end {
            if !state.checkpoints[i].window.isEmpty {
                let window = try sparseWindow(state.checkpoints[i])
                state.checkpoints[i].window = []
                try body(i, window)
            }
            i += 1
        }
        return max(first, end)
    }

    /// The checkpoint's window made sparse, from the blob's bytes read again (they lie behind
    /// the decoder: a checkpoint is settled only once the next one is recorded, or at the end).
    /// A window that cannot be made sparse is kept whole (only a blob that changed under the
    /// decoder could do that; the digests then fail the layer).
    private func sparseWindow(_ checkpoint: Checkpoint) throws -> [UInt8] {
        let reader = state.reader
        var byteBefore: UInt8 = 0
        if checkpoint.bits > 0 {
            let n = try withUnsafeMutableBytes(of: &byteBefore) { try reader.reread(into: $0, at: checkpoint.compressedOffset - 1) }
            guard n == 1 else { throw state.truncated("gzip member") }
        }
        let maker = sparseWindows ?? SparseWindow.Maker()
        sparseWindows = maker
        return maker.sparse(checkpoint, byteBefore: byteBefore, read: { try reader.reread(into: $0, at: $1) })
            ?? checkpoint.window
    }
    /// Blob bytes the decoder has consumed (equals the blob size after `finish`).
    public var compressedBytesConsumed: UInt64 { state.reader.offset }
    /// Uncompressed bytes handed out by `read` (and drained by `finish`).
    public var uncompressedBytesProduced: UInt64 { state.produced - UInt64(state.outEnd - state.outDelivered) }

    private let state: IndexingState
    private let indexer: Indexer
    private var sparseWindows: SparseWindow.Maker?
    private enum Indexer {
        case none
        case gzip(GzipIndexer)
        case zstd(ZstdIndexer)
    }

    typealias IsalStats = GzipIndexer.IsalStats
    /// What the isa-l path did (tests and measurements).
    var isalStats: IsalStats {
        if case .gzip(let gzip) = indexer { return gzip.isalStats }
        return IsalStats()
    }

    public convenience init(compression: LayerCompression, file: FileDescriptor, blobSize: UInt64,
                            checkpointSpacing: UInt64 = 4 << 20,
                            onCompressedBytes: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.init(compression: compression, blob: BlobFile(file), blobSize: blobSize, checkpointSpacing: checkpointSpacing,
                  onCompressedBytes: onCompressedBytes)
    }

    /// Decodes a blob that may be a range of its file (a member of an image archive).
    public convenience init(compression: LayerCompression, blob file: BlobFile, blobSize: UInt64,
                            checkpointSpacing: UInt64 = 4 << 20,
                            onCompressedBytes: @escaping (UnsafeRawBufferPointer) -> Void) {
        let reader = BlobReader(size: blobSize, chunkSize: 1 << 20,
                                source: { buffer, offset in try preadChecked(file, into: buffer, at: offset) },
                                onBytes: onCompressedBytes)
        self.init(compression: compression, reader: reader, checkpointSpacing: checkpointSpacing)
    }

    init(compression: LayerCompression, reader: BlobReader, checkpointSpacing: UInt64, useIsal: Bool? = nil) {
        self.compression = compression
        state = IndexingState(reader: reader, spacing: checkpointSpacing,
                              outputCapacity: compression == .none ? 0 : IndexingState.outputCapacity)
        switch compression {
        case .none:
            indexer = .none
            state.checkpoints = [Checkpoint(compressedOffset: 0, uncompressedOffset: 0)]
        case .gzip:
            indexer = .gzip(GzipIndexer(state: state, useIsal: useIsal ?? Self.isalFromEnvironment))
        case .zstd:
            indexer = .zstd(ZstdIndexer(state: state))
        }
    }

    static var isalFromEnvironment: Bool { RuntimeSettings.current.gzipInflateWithIsal }

    /// Fills `buffer` with the next uncompressed bytes; fewer only at the end of the stream (0 there).
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if compression == .none { return try readPassThrough(into: buffer) }
        let state = state
        var filled = 0
        while filled < buffer.count {
            if state.outDelivered < state.outEnd {
                let n = min(buffer.count - filled, state.outEnd - state.outDelivered)
                (buffer.baseAddress! + filled).copyMemory(from: state.out.baseAddress! + state.outDelivered, byteCount: n)
                state.outDelivered += n
                filled += n
                continue
            }
            if state.phase == .end { break }
            try produce()
        }
        return filled
    }

    /// Passes up to `count` next bytes of the stream to `visit` in place (no copy into a
    /// caller's buffer: what a tar reader skips, file data mostly, is only hashed). Returns how
    /// many; fewer only at the end of the stream.
    public func discard(_ count: Int, _ visit: (UnsafeRawBufferPointer) throws -> Void) throws -> Int {
        let state = state
        var done = 0
        while done < count {
            if compression == .none {
                let reader = state.reader
                if reader.available == 0 {
                    guard try reader.fill(atLeast: 1) else { break }
                }
                let n = min(count - done, reader.available)
                try visit(UnsafeRawBufferPointer(start: reader.bytes, count: n))
                reader.consume(n)
                state.produced += UInt64(n)
                done += n
                continue
            }
            if state.outDelivered < state.outEnd {
                let n = min(count - done, state.outEnd - state.outDelivered)
                try visit(UnsafeRawBufferPointer(start: state.out.baseAddress! + state.outDelivered, count: n))
                state.outDelivered += n
                done += n
                continue
            }
            if state.phase == .end { break }
            try produce()
        }
        return done
    }

    /// Call after `read` returned 0 (or to stop early: the rest is decoded, checked and dropped).
    /// Reads and hashes the rest of the blob; only zero bytes may follow the last member or frame.
    public func finish() throws {
        let reader = state.reader
        if compression == .none {
            while try reader.available > 0 || reader.fill(atLeast: 1) {
                state.produced += UInt64(reader.available)
                reader.consume(reader.available)
            }
            return
        }
        while state.phase != .end {
            state.outDelivered = state.outEnd
            try produce()
        }
        state.outDelivered = state.outEnd
        while try reader.available > 0 || reader.fill(atLeast: 1) {
            let p = reader.bytes
            for i in 0..<reader.available where p[i] != 0 {
                throw CodecError(kind: .trailingGarbage, message: "non-zero bytes after the last \(unitName)",
                                 compressedOffset: reader.offset + UInt64(i))
            }
            reader.consume(reader.available)
        }
    }

    private var unitName: String { compression == .zstd ? "zstd frame" : "gzip member" }

    /// Advances the indexer one step; called only when all output has been handed out.
    @inline(__always)
    private func produce() throws {
        switch indexer {
        case .none: return
        case .gzip(let gzip): try gzip.produce()
        case .zstd(let zstd): try zstd.produce()
        }
    }

    private func readPassThrough(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let reader = state.reader
        var filled = 0
        while filled < buffer.count {
            if reader.available == 0 {
                guard try reader.fill(atLeast: 1) else { break }
            }
            let n = min(buffer.count - filled, reader.available)
            (buffer.baseAddress! + filled).copyMemory(from: reader.bytes, byteCount: n)
            reader.consume(n)
            filled += n
            state.produced += UInt64(n)
        }
        return filled
    }
}
