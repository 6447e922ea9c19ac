import CZlib
import StrataSystem

/// Serves an uncompressed byte range by decoding from one checkpoint to the end of the span
/// (gzip member / zstd frame), reading the blob with pread in 256 KiB chunks. Reusable (the
/// z_stream / ZSTD_DCtx and buffers live as long as the decoder), cheap to create, not thread-safe.
public final class SpanDecoder {
    public let compression: LayerCompression

    private static let inputChunk = 256 << 10
    private static let scratchSize = 64 << 10

    private var inflater: Inflater?
    /// gzip spans are inflated by isa-l unless `STRATA_GZIP_INFLATE=zlib` (see `IndexingDecoder`).
    private let useIsal: Bool
    private var isal: IsalInflater?
    private var zstd: ZstdDecompressor?
    private var input: UnsafeMutableRawBufferPointer?
    private var scratch: UnsafeMutableRawBufferPointer?

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
        switch compression {
        case .none:
            let offset = checkpoint.compressedOffset + skip
            do {
                return try file.readFully(into: buffer, at: offset)
            } catch {
                throw CodecError(kind: .io, message: "\(error)", compressedOffset: offset)
            }
        case .gzip, .zstd:
            if buffer.count == 0 { return 0 }
            return try decodeSpan(file: file, from: checkpoint, skip: skip, into: buffer)
        }
    }

    private func decodeSpan(file: BlobFile, from checkpoint: Checkpoint, skip: UInt64,
                            into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let input = self.input ?? .allocate(byteCount: Self.inputChunk, alignment: 16)
        self.input = input
        let scratch = self.scratch ?? .allocate(byteCount: Self.scratchSize, alignment: 16)
        self.scratch = scratch
        let start = checkpoint.compressedOffset
        if compression == .gzip && useIsal {
            try prepareIsal(at: checkpoint, file: file)
        } else if compression == .gzip {
            try prepareInflater(at: checkpoint, file: file)
        } else if let zstd {
            try zstd.reset(at: start)
        } else {
            zstd = try ZstdDecompressor(at: start)
        }

        var chunkOffset = start      // blob offset of input[0]
        var inStart = 0
        var inEnd = 0
        var skipLeft = skip
        var filled = 0
        var lastCallFilledOutput = false
        while skipLeft > 0 || filled < buffer.count {
            if inStart == inEnd && !lastCallFilledOutput {
                chunkOffset += UInt64(inEnd)
                inStart = 0
                inEnd = try preadChecked(file, into: input, at: chunkOffset)
                if inEnd == 0 {
                    throw CodecError(kind: .truncated, message: "blob ends inside a \(compression == .zstd ? "zstd frame" : "gzip member")",
                                     compressedOffset: chunkOffset)
                }
            }
            let target: UnsafeMutableRawPointer
            let room: Int
            if skipLeft > 0 {
                target = scratch.baseAddress!
                room = Int(min(UInt64(scratch.count), skipLeft))
            } else {
                target = buffer.baseAddress! + filled
                room = buffer.count - filled
            }
            let source = (input.baseAddress! + inStart).assumingMemoryBound(to: UInt8.self)
            let output = target.assumingMemoryBound(to: UInt8.self)
            let step: CodecStep
            if compression == .gzip && useIsal {
                step = try isal!.inflate(input: source, inputCount: inEnd - inStart, output: output, outputCount: room,
                                         inputOffset: chunkOffset + UInt64(inStart))
            } else if compression == .gzip {
                step = try inflater!.inflate(input: source, inputCount: inEnd - inStart, output: output, outputCount: room,
                                             flush: Z_NO_FLUSH, inputOffset: chunkOffset + UInt64(inStart))
            } else {
                step = try zstd!.decompress(input: source, inputCount: inEnd - inStart, output: output, outputCount: room,
                                            inputOffset: chunkOffset + UInt64(inStart))
            }
            inStart += step.consumed
            if skipLeft > 0 { skipLeft -= UInt64(step.produced) } else { filled += step.produced }
            if step.ended { break }
            if step.consumed == 0 && step.produced == 0 && inStart < inEnd {
                throw CodecError(kind: .corrupt, message: "decoder makes no progress", compressedOffset: chunkOffset + UInt64(inStart))
            }
            lastCallFilledOutput = step.produced == room && (step.consumed > 0 || step.produced > 0)
        }
        return filled
    }

    /// isa-l positioned at the checkpoint: the pending bits of the byte before it, and the window.
    private func prepareIsal(at checkpoint: Checkpoint, file: BlobFile) throws {
        let start = checkpoint.compressedOffset
        let isal = self.isal ?? IsalInflater()
        self.isal = isal
        isal.reset()
        let bits = Int(checkpoint.bits)
        var byte: UInt8 = 0
        if bits > 0 {
            guard bits <= 7, start > 0 else {
                throw CodecError(kind: .corrupt, message: "invalid checkpoint (bits \(bits))", compressedOffset: start)
            }
            let n = try withUnsafeMutableBytes(of: &byte) { try preadChecked(file, into: $0, at: start - 1) }
            guard n == 1 else {
                throw CodecError(kind: .truncated, message: "blob ends before a checkpoint", compressedOffset: start - 1)
            }
        }
        try isal.prime(bits: bits, value: byte >> (8 - UInt8(bits)), window: checkpoint.window, at: start)
    }

    /// Raw inflate positioned at the checkpoint: the pending bits of the byte before it, then the window.
    private func prepareInflater(at checkpoint: Checkpoint, file: BlobFile) throws {
        let start = checkpoint.compressedOffset
        if let inflater { try inflater.reset(at: start) } else { inflater = try Inflater(at: start) }
        let bits = Int32(checkpoint.bits)
        if bits > 0 {
            guard bits <= 7, start > 0 else {
                throw CodecError(kind: .corrupt, message: "invalid checkpoint (bits \(bits))", compressedOffset: start)
            }
            var byte: UInt8 = 0
            let n = try withUnsafeMutableBytes(of: &byte) { try preadChecked(file, into: $0, at: start - 1) }
            guard n == 1 else {
                throw CodecError(kind: .truncated, message: "blob ends before a checkpoint", compressedOffset: start - 1)
            }
            try inflater!.prime(bits: bits, value: Int32(byte) >> (8 - bits), at: start - 1)
        }
        if !checkpoint.window.isEmpty {
            try inflater!.setDictionary(checkpoint.window, at: start)
        }
    }
}
