import Testing
import StrataCodec

/// Sparse windows (`SparseWindow`): what the indexer hands out keeps only bytes of the real
/// window, decodes exactly as the whole window does, and is much emptier than it.
@Suite struct SparseWindowTests {
    /// The indexer's checkpoints with the windows it hands out (`takeWindows`) in place.
    static func sparseCheckpoints(_ file: TempFile, blobSize: UInt64, spacing: UInt64) throws -> [Checkpoint] {
        let decoder = IndexingDecoder(compression: .gzip, file: file.fd, blobSize: blobSize, checkpointSpacing: spacing) { _ in }
        var windows: [Int: [UInt8]] = [:]
        var taken = 0
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while try chunk.withUnsafeMutableBytes({ try decoder.read(into: $0) }) > 0 {
            taken = try decoder.takeWindows(from: taken) { windows[$0] = $1 }
        }
        try decoder.finish()
        _ = try decoder.takeWindows(from: taken, all: true) { windows[$0] = $1 }
        return decoder.checkpoints.enumerated().map { i, c in
            var c = c
            c.window = windows[i] ?? []
            return c
        }
    }

    /// Data, and whether most of its windows' bytes go unread (short repeats read much of theirs).
    static let inputs: [(String, [UInt8], sparse: Bool)] = [
        ("mixed text and random", mixedData(size: 6 << 20, seed: 7), true),
        ("one repeated byte", [UInt8](repeating: 0x61, count: 40 << 20), true),
        ("short lines", Array((0..<600_000).map { "line \($0 % 977) of the file\n" }.joined().utf8), false),
    ]

    @Test(arguments: 0..<3)
    func sparseWindowsDecodeAsTheWholeOnes(_ which: Int) throws {
        let (name, input, sparse) = Self.inputs[which]
        let blob = Gzip.compress(input)
        let file = try TempFile(blob)
        defer { file.remove() }
        let checkpoints = try Self.sparseCheckpoints(file, blobSize: UInt64(blob.count), spacing: 128 << 10)
        #expect(checkpoints.count > 2, "\(name): \(checkpoints.count) checkpoints")
        var whole = 0, kept = 0
        let decoder = SpanDecoder(compression: .gzip)
        for (i, c) in checkpoints.enumerated() where i > 0 {
            let at = Int(c.uncompressedOffset)
            let full = Array(input[(at - min(at, 32 << 10))..<at])
            try #require(c.window.count == full.count, "\(name): checkpoint \(i)")
            // Only bytes of the real window, the others zero.
            #expect(zip(c.window, full).allSatisfy { $0 == 0 || $0 == $1 }, "\(name): checkpoint \(i)")
            whole += full.count
            kept += c.window.filter { $0 != 0 }.count
            // The indexer's one `SparseWindow.Maker`, used checkpoint after checkpoint, made
            // what a fresh one makes.
            var wholeCheckpoint = c
            wholeCheckpoint.window = full
            let byteBefore = c.bits > 0 ? blob[Int(c.compressedOffset) - 1] : 0
            let fresh = SparseWindow.sparse(wholeCheckpoint, byteBefore: byteBefore, read: { buffer, offset in
                let n = max(min(buffer.count, blob.count - Int(offset)), 0)
                blob.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
                return n
            })
            #expect(fresh == c.window, "\(name): checkpoint \(i)")
            // Decoding from it gives the stream's bytes, to the next checkpoint and past it.
            let end = i + 1 < checkpoints.count ? Int(checkpoints[i + 1].uncompressedOffset) + 1000 : input.count
            let out = try decodeSpan(decoder, file, c, count: min(end, input.count) - at)
            #expect(out.withUnsafeBytes { same($0, input, at..<(at + out.count)) } && out.count == min(end, input.count) - at,
                    "\(name): checkpoint \(i)")
        }
        #expect(!sparse || kept * 2 < whole, "\(name): \(kept) of \(whole) window bytes kept")
        #expect(kept < whole, "\(name): \(kept) of \(whole) window bytes kept")
    }

    /// Compressed bytes that end before the first 32 KiB after the checkpoint are decoded
    /// cannot tell which bytes are read: no sparse window then (the caller keeps it whole).
    @Test func tooLittleInputGivesNone() throws {
        let input = mixedData(size: 2 << 20, seed: 11)
        let blob = Gzip.compress(input)
        let file = try TempFile(blob)
        defer { file.remove() }
        let decoder = IndexingDecoder(compression: .gzip, file: file.fd, blobSize: UInt64(blob.count), checkpointSpacing: 256 << 10) { _ in }
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        while try chunk.withUnsafeMutableBytes({ try decoder.read(into: $0) }) > 0 {}
        try decoder.finish()
        let c = try #require(decoder.checkpoints.dropFirst().first { $0.bits == 0 })
        let end = c.compressedOffset + 200
        let sparse = SparseWindow.sparse(c, byteBefore: 0, read: { buffer, offset in
            guard offset < end else { return 0 }
            let n = min(buffer.count, Int(end - offset))
            blob.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
            return n
        })
        #expect(sparse == nil)
        let enough = SparseWindow.sparse(c, byteBefore: 0, read: { buffer, offset in
            let n = min(buffer.count, blob.count - Int(offset))
            blob.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
            return n
        })
        #expect(enough != nil && enough != c.window)
    }
}
