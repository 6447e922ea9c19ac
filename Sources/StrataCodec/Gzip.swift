import CZlib

/// Whole-buffer gzip, for test fixtures and small blobs.
public enum Gzip {
    /// One gzip member (zlib's header: no name, no mtime).
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        compress(bytes, level: level, strategy: Z_DEFAULT_STRATEGY)
    }

    /// `strategy`: zlib's (e.g. `Z_FIXED`: static Huffman blocks only, for tests).
    static func compress(_ bytes: [UInt8], level: Int32, strategy: Int32) -> [UInt8] {
        Compressor(level: level, strategy: strategy).compress(bytes)
    }

    /// Compresses buffer after buffer into one gzip member each, with one zlib stream reset
    /// between them: setting one up costs about as much as deflating a sparse 32 KiB window,
    /// which an indexer does at every checkpoint. The output is the same as a fresh one's.
    public final class Compressor {
        private let deflater: Deflater
        private var used = false

        public convenience init(level: Int32 = 6) { self.init(level: level, strategy: Z_DEFAULT_STRATEGY) }

        /// Matches only of the byte before (zlib's `Z_RLE`): for data of long zero runs between
        /// the bytes kept, a sparse window. About as small as level 2 there, in half the time.
        public static func runLengths() -> Compressor { Compressor(level: 6, strategy: Z_RLE) }

        init(level: Int32, strategy: Int32) {
            do { deflater = try Deflater(level: level, strategy: strategy) } catch {
                fatalError("gzip compression failed: \(error)")
            }
        }

        public func compress(_ bytes: [UInt8]) -> [UInt8] {
            do {
                if used { try deflater.reset() }
                used = true
                var out = [UInt8](repeating: 0, count: bytes.count + bytes.count / 1000 + 64)
                var consumed = 0
                var produced = 0
                try bytes.withUnsafeBufferPointer { input in
                    while true {
                        if produced == out.count { out.append(contentsOf: repeatElement(0, count: out.count)) }
                        let step = try out.withUnsafeMutableBufferPointer { output in
                            try deflater.deflate(input: input.baseAddress.map { $0 + consumed }, inputCount: input.count - consumed,
                                                 output: output.baseAddress! + produced, outputCount: output.count - produced,
                                                 finish: true)
                        }
                        consumed += step.consumed
                        produced += step.produced
                        if step.ended { break }
                    }
                }
                out.removeSubrange(produced...)
                return out
            } catch {
                fatalError("gzip compression failed: \(error)")
            }
        }
    }

    /// One member per part, concatenated (as eStargz writes one per file).
    public static func compressMembers(_ parts: [[UInt8]], level: Int32 = 6) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts { out += compress(part, level: level) }
        return out
    }

    /// One gzip member that must decode to exactly `count` bytes (CRC- and length-checked by
    /// zlib), with nothing after it: a checkpoint's stored window. Decoded straight into its
    /// result: a span decode reads one, so no decoder state or chunk buffer is made for it.
    public static func decompress(member bytes: [UInt8], exactly count: Int) throws -> [UInt8] {
        let stream = try ZStream(at: 0, start: { inflateInit2_($0, 16 + 15, zlibVersion(), Int32(MemoryLayout<z_stream>.size)) },
                                 end: { inflateEnd($0) })
        var ended = false, consumed = 0
        // One spare byte of room: a member longer than `count` then shows as output, not as a stall.
        let out = try [UInt8](unsafeUninitializedCapacity: count + 1) { buffer, initialized in
            let step = try bytes.withUnsafeBufferPointer { input in
                try stream.step(input: input.baseAddress, inputCount: input.count, output: buffer.baseAddress!,
                                outputCount: buffer.count, inputOffset: 0) { inflate($0, Z_FINISH) }
            }
            initialized = step.produced
            ended = step.ended
            consumed = step.consumed
        }
        guard ended, out.count == count, consumed == bytes.count else {
            throw CodecError(kind: .corrupt, message: "stored window is not one gzip member of \(count) bytes",
                             compressedOffset: UInt64(consumed))
        }
        return out
    }

    /// All members, each CRC- and length-checked; trailing zero bytes allowed. More than
    /// `limit` bytes of output is an error (input not yet trusted cannot make it grow without end).
    public static func decompress(_ bytes: [UInt8], limit: Int = .max) throws -> [UInt8] {
        try decodeAll(.gzip, bytes, limit: limit)
    }
}

/// Whole-buffer zstd, for test fixtures and small blobs.
public enum Zstd {
    /// `frameSize` splits the input into independent frames of that many bytes (each a checkpoint).
    public static func compress(_ bytes: [UInt8], level: Int32 = 3, frameSize: Int? = nil) -> [UInt8] {
        do {
            let compressor = try ZstdCompressor(level: level)
            let step = max(frameSize ?? max(bytes.count, 1), 1)
            var out = [UInt8](repeating: 0, count: ZstdCompressor.bound(min(step, bytes.count)))
            var result: [UInt8] = []
            var from = 0
            repeat {
                let count = min(step, bytes.count - from)
                let n = try bytes.withUnsafeBytes { all in
                    try out.withUnsafeMutableBytes { output in
                        try compressor.compressFrame(UnsafeRawBufferPointer(rebasing: all[from..<(from + count)]), into: output)
                    }
                }
                result += out[0..<n]
                from += count
            } while from < bytes.count
            return result
        } catch {
            fatalError("zstd compression failed: \(error)")
        }
    }

    /// All frames (skippable ones skipped); trailing zero bytes allowed.
    public static func decompress(_ bytes: [UInt8], limit: Int = .max) throws -> [UInt8] {
        try decodeAll(.zstd, bytes, limit: limit)
    }
}

/// Decodes a whole in-memory blob with the indexing decoder (same checks, no checkpoints).
private func decodeAll(_ compression: LayerCompression, _ bytes: [UInt8], limit: Int) throws -> [UInt8] {
    let decoder = IndexingDecoder(compression: compression, reader: BlobReader(bytes: bytes), checkpointSpacing: .max)
    var result: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 256 << 10)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try decoder.read(into: $0) }
        if n == 0 { break }
        guard n <= limit - result.count else {
            throw CodecError(kind: .corrupt, message: "decodes to more than \(limit) bytes", compressedOffset: 0)
        }
        result += chunk[0..<n]
    }
    try decoder.finish()
    return result
}
