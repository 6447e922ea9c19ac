import StrataSystem

/// One decoding library behind a common face: zlib (`Inflater`), isa-l (`IsalInflater`) and zstd
/// (`ZstdDecompressor`). `SpanDecoder` serves every compression through it; the indexers use the
/// engines directly, as they also need what is particular to each (zlib's `Z_BLOCK`, isa-l's
/// block state).
protocol DecodingEngine: AnyObject {
    /// What one decodable stream is called in errors ("gzip member", "zstd frame").
    var unitName: String { get }
    /// Forgets the current stream and resumes at `checkpoint` (one `IndexingDecoder` recorded): the
    /// next input is the blob from `compressedOffset`, preceded by the `bits` high bits of
    /// `byteBefore` (the blob byte before it; unused when `bits` is 0), with the checkpoint's window
    /// as history.
    func prime(at checkpoint: Checkpoint, byteBefore: UInt8) throws
    /// Feeds input and produces output. Errors carry `inputOffset` (blob offset of `input`) plus
    /// what the engine took before failing.
    func step(input: UnsafePointer<UInt8>, inputCount: Int, output: UnsafeMutablePointer<UInt8>, outputCount: Int,
              inputOffset: UInt64) throws -> CodecStep
    /// `SpanDecoder`'s loop (the extension below): a requirement so that each engine gets a copy
    /// specialised for it, its `step` called directly.
    func decodeSpan(file: BlobFile, from start: UInt64, skip: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                    input: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) throws -> Int
}

extension DecodingEngine {
    /// Decodes from blob offset `start` (the engine primed there), reading `input`-sized chunks,
    /// drops `skip` bytes of output into `scratch`, then fills `buffer`. Returns fewer bytes than
    /// asked only where the stream ends.
    func decodeSpan(file: BlobFile, from start: UInt64, skip: UInt64, into buffer: UnsafeMutableRawBufferPointer,
                    input: UnsafeMutableRawBufferPointer, scratch: UnsafeMutableRawBufferPointer) throws -> Int {
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
                    throw CodecError(kind: .truncated, message: "blob ends inside a \(unitName)", compressedOffset: chunkOffset)
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
            let step = try step(input: source, inputCount: inEnd - inStart, output: target.assumingMemoryBound(to: UInt8.self),
                                outputCount: room, inputOffset: chunkOffset + UInt64(inStart))
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
}

/// Where a span decode stopped (`SpanDecoder.begin`, `decodeMore`): the input chunk in hand and
/// whether the unit (gzip member, zstd frame) has ended. The engine keeps the rest.
struct SpanPosition {
    var chunkOffset: UInt64
    var inStart = 0
    var inEnd = 0
    var lastCallFilledOutput = false
    var ended = false
}

extension DecodingEngine {
    /// `decodeSpan` in steps: continues from `position` (the engine primed there, or left there
    /// by the previous call, with `input` holding the chunk it describes) and fills `buffer`.
    /// Returns fewer bytes than asked only where the stream ends.
    func continueSpan(file: BlobFile, position p: inout SpanPosition, into buffer: UnsafeMutableRawBufferPointer,
                      input: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count && !p.ended {
            if p.inStart == p.inEnd && !p.lastCallFilledOutput {
                p.chunkOffset += UInt64(p.inEnd)
                p.inStart = 0
                p.inEnd = try preadChecked(file, into: input, at: p.chunkOffset)
                if p.inEnd == 0 {
                    throw CodecError(kind: .truncated, message: "blob ends inside a \(unitName)", compressedOffset: p.chunkOffset)
                }
            }
            let room = buffer.count - filled
            let source = (input.baseAddress! + p.inStart).assumingMemoryBound(to: UInt8.self)
            let step = try step(input: source, inputCount: p.inEnd - p.inStart,
                                output: (buffer.baseAddress! + filled).assumingMemoryBound(to: UInt8.self),
                                outputCount: room, inputOffset: p.chunkOffset + UInt64(p.inStart))
            p.inStart += step.consumed
            filled += step.produced
            if step.ended { p.ended = true; break }
            if step.consumed == 0 && step.produced == 0 && p.inStart < p.inEnd {
                throw CodecError(kind: .corrupt, message: "decoder makes no progress", compressedOffset: p.chunkOffset + UInt64(p.inStart))
            }
            p.lastCallFilledOutput = step.produced == room && (step.consumed > 0 || step.produced > 0)
        }
        return filled
    }
}
