import StrataSystem

/// Serves an uncompressed byte range by decoding from one checkpoint to the end of the span
/// (gzip member / zstd frame), reading the blob with pread in 256 KiB chunks. Reusable (the
/// engine and buffers live as long as the decoder), cheap to create, not thread-safe.
public final class SpanDecoder {
    public let compression: LayerCompression

    private static let inputChunk = 256 << 10
    private static let scratchSize = 64 << 10

    /// gzip spans are inflated by isa-l unless `STRATA_GZIP_INFLATE=zlib` (see `IndexingDecoder`).
    private let useIsal: Bool
    /// Made on first use; its `decodeSpan` is specialised per engine.
    private var engine: (any DecodingEngine)?
    private var input: UnsafeMutableRawBufferPointer?
    private var scratch: UnsafeMutableRawBufferPointer?
    /// A decode in steps (`begin`, `decodeMore`): the blob and where the engine stopped.
    private var stepFile: BlobFile?
    private var position: SpanPosition?
    /// The input of a decode in steps: `input`, or a blob in memory itself (never written:
    /// past its end a read of the blob returns nothing, which ends the decode).
    private var stepInput: UnsafeMutableRawBufferPointer?

    public init(compression: LayerCompression) {
        self.compression = compression
        useIsal = IndexingDecoder.isalFromEnvironment
    }

    init(compression: LayerCompression, useIsal: Bool) {
        self.compression = compression
        self.useIsal = useIsal
    }

    deinit {
        input?.deallocate()
        scratch?.deallocate()
    }

    /// Decodes from `checkpoint` (one recorded by `IndexingDecoder`), drops `skip` bytes of
    /// output, then fills `buffer`. Returns fewer bytes than asked only where the gzip member or
    /// zstd frame holding the checkpoint ends (or, for `.none`, where the file ends).
    /// A gzip checkpoint with an empty window is a member start: its `compressedOffset` is the
    /// member's raw deflate data (the header was skipped at index time).
    public func decode(file: FileDescriptor, from checkpoint: Checkpoint, skip: UInt64,
                       into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try decode(blob: BlobFile(file), from: checkpoint, skip: skip, into: buffer)
    }

    /// As `decode(file:…)`, for a blob that may be a range of its file (an archive member).
    public func decode(blob file: BlobFile, from checkpoint: Checkpoint, skip: UInt64,
                       into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if compression == .none {
            let offset = checkpoint.compressedOffset + skip
            do {
                return try file.readFully(into: buffer, at: offset)
            } catch {
                throw CodecError(kind: .io, message: "\(error)", compressedOffset: offset)
            }
        }
        if buffer.count == 0 { return 0 }
        position = nil   // the engine leaves any decode in steps
        let input = self.input ?? .allocate(byteCount: Self.inputChunk, alignment: 16)
        self.input = input
        let scratch = self.scratch ?? .allocate(byteCount: Self.scratchSize, alignment: 16)
        self.scratch = scratch
        let start = checkpoint.compressedOffset
        let engine = try self.engine ?? makeEngine(at: start)
        self.engine = engine
        try engine.prime(at: checkpoint, byteBefore: byteBefore(checkpoint, file: file))
        return try engine.decodeSpan(file: file, from: start, skip: skip, into: buffer, input: input, scratch: scratch)
    }

    /// Starts a decode in steps at `checkpoint` (gzip or zstd): `decodeMore` then hands out the
    /// stream's bytes from the checkpoint on, as far as each caller needs. Until the next
    /// `begin` or `decode`, the decoder keeps its place (and its engine's state).
    public func begin(blob file: BlobFile, from checkpoint: Checkpoint) throws {
        position = nil
        guard compression != .none else {
            throw CodecError(kind: .unsupported, message: "uncompressed blobs need no decoder", compressedOffset: checkpoint.compressedOffset)
        }
        let start = checkpoint.compressedOffset
        let engine = try self.engine ?? makeEngine(at: start)
        self.engine = engine
        try engine.prime(at: checkpoint, byteBefore: byteBefore(checkpoint, file: file))
        stepFile = file
        if let bytes = file.bytesInMemory(from: start) {
            // Read in place: no copy into `input`, and no input buffer to fault in.
            stepInput = UnsafeMutableRawBufferPointer(mutating: bytes)
            position = SpanPosition(chunkOffset: start, inStart: 0, inEnd: bytes.count)
        } else {
            let input = self.input ?? .allocate(byteCount: Self.inputChunk, alignment: 16)
            self.input = input
            stepInput = input
            position = SpanPosition(chunkOffset: start)
        }
    }

    /// The next bytes of the decode `begin` started, into `buffer`. Returns fewer bytes than
    /// asked only where the gzip member or zstd frame ends. After an error the decoder has no
    /// place: `begin` again.
    public func decodeMore(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard var p = position, let file = stepFile, let engine, let input = stepInput else {
            throw CodecError(kind: .unsupported, message: "decodeMore without begin", compressedOffset: 0)
        }
        position = nil
        if buffer.count == 0 { position = p; return 0 }
        let n = try engine.continueSpan(file: file, position: &p, into: buffer, input: input)
        position = p
        return n
    }

    private func makeEngine(at offset: UInt64) throws -> any DecodingEngine {
        switch compression {
        case .gzip: return useIsal ? IsalInflater() : try Inflater(at: offset)
        case .zstd: return try ZstdDecompressor(at: offset)
        case .none: throw CodecError(kind: .unsupported, message: "uncompressed blobs need no decoder", compressedOffset: offset)
        }
    }

    /// The blob byte before a gzip checkpoint inside a member, whose `bits` high bits are still to decode.
    private func byteBefore(_ checkpoint: Checkpoint, file: BlobFile) throws -> UInt8 {
        let start = checkpoint.compressedOffset
        let bits = checkpoint.bits
        var byte: UInt8 = 0
        guard bits > 0 else { return byte }
        guard bits <= 7, start > 0 else {
            throw CodecError(kind: .corrupt, message: "invalid checkpoint (bits \(bits))", compressedOffset: start)
        }
        let n = try withUnsafeMutableBytes(of: &byte) { try preadChecked(file, into: $0, at: start - 1) }
        guard n == 1 else {
            throw CodecError(kind: .truncated, message: "blob ends before a checkpoint", compressedOffset: start - 1)
        }
        return byte
    }
}
