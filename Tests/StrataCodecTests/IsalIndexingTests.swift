import Glibc
import Testing
@testable import StrataCodec
import StrataHash
import StrataSystem

/// gzip indexing with isa-l: the same stream as zlib, and every checkpoint resumes (with zlib,
/// as `SpanDecoder` does) to the right bytes, whatever compressor shaped the deflate blocks.
@Suite struct IsalIndexingTests {
    static let big = mixedData(size: 24 << 20 + 777, seed: 0x51A7A)
    static let medium = mixedData(size: 6 << 20 + 13, seed: 0xBEEF)

    struct Run {
        var output: [UInt8]
        var checkpoints: [Checkpoint]
        var stats: IndexingDecoder.IsalStats
        var hashed: [UInt8]
        var consumed: UInt64
    }

    static func run(_ file: TempFile, size: Int, spacing: UInt64, isal: Bool, readSize: Int = 65_537) throws -> Run {
        let hasher = SHA256Hasher()
        let reader = BlobReader(size: UInt64(size), chunkSize: 1 << 20,
                                source: { buffer, offset in try preadChecked(file.fd, into: buffer, at: offset) },
                                onBytes: { hasher.update($0) })
        let decoder = IndexingDecoder(compression: .gzip, reader: reader, checkpointSpacing: spacing, useIsal: isal)
        var output: [UInt8] = []
        output.reserveCapacity(size * 4)
        var chunk = [UInt8](repeating: 0, count: readSize)
        while true {
            let n = try chunk.withUnsafeMutableBytes { try decoder.read(into: $0) }
            if n == 0 { break }
            output += chunk[0..<n]
        }
        try decoder.finish()
        return Run(output: output, checkpoints: decoder.checkpoints, stats: decoder.isalStats,
                   hashed: hasher.finalize(), consumed: decoder.compressedBytesConsumed)
    }

    /// Each checkpoint resumes to the right bytes, with zlib and with isa-l: from its start, and with a skip.
    static func expectCheckpointsWork(_ checkpoints: [Checkpoint], _ file: TempFile, _ input: [UInt8],
                                      sourceLocation: SourceLocation = #_sourceLocation) throws {
        for isal in [false, true] {
            try expectCheckpointsWork(checkpoints, file, input, decoder: SpanDecoder(compression: .gzip, useIsal: isal),
                                      sourceLocation: sourceLocation)
        }
    }

    static func expectCheckpointsWork(_ checkpoints: [Checkpoint], _ file: TempFile, _ input: [UInt8], decoder: SpanDecoder,
                                      sourceLocation: SourceLocation) throws {
        #expect(checkpoints.first?.uncompressedOffset == 0, sourceLocation: sourceLocation)
        for (a, b) in zip(checkpoints, checkpoints.dropFirst()) {
            #expect(b.uncompressedOffset > a.uncompressedOffset && b.compressedOffset > a.compressedOffset,
                    sourceLocation: sourceLocation)
        }
        var bad = 0
        for (i, checkpoint) in checkpoints.enumerated() {
            let start = Int(checkpoint.uncompressedOffset)
            let end = i + 1 < checkpoints.count ? Int(checkpoints[i + 1].uncompressedOffset) : input.count
            let head = try decodeSpan(decoder, file, checkpoint, count: min(40_000, input.count - start))
            let skip = (end - start) * 2 / 3
            let part = try decodeSpan(decoder, file, checkpoint, skip: UInt64(skip), count: min(3000, input.count - start - skip))
            let ok = !head.isEmpty
                && head.withUnsafeBytes { same($0, input, start..<(start + head.count)) }
                && part.withUnsafeBytes { same($0, input, (start + skip)..<(start + skip + part.count)) }
            if !ok {
                bad += 1
                Issue.record("checkpoint \(i) of \(checkpoints.count): c \(checkpoint.compressedOffset) u \(start) bits \(checkpoint.bits) window \(checkpoint.window.count); head \(head.count) part \(part.count) skip \(skip) end \(end) input \(input.count)", sourceLocation: sourceLocation)
            }
        }
        #expect(bad == 0, "\(bad) of \(checkpoints.count) checkpoints decode wrong", sourceLocation: sourceLocation)
    }

    @Test(arguments: [UInt64(64 << 10), 512 << 10, 4 << 20])
    func mixedDataAtSeveralSpacings(spacing: UInt64) throws {
        let input = Self.big
        let blob = Gzip.compress(input)
        let file = try TempFile(blob)
        defer { file.remove() }
        let fast = try Self.run(file, size: blob.count, spacing: spacing, isal: true)
        let slow = try Self.run(file, size: blob.count, spacing: spacing, isal: false)
        #expect(same(fast.output, input))
        #expect(fast.hashed == SHA256Hasher.hash(blob) && fast.consumed == UInt64(blob.count))
        #expect(fast.stats.members == 1 && fast.stats.fallbacks == 0 && fast.stats.rejected == 0, "\(fast.stats)")
        // isa-l may miss a boundary zlib takes (a slice ending inside a header is needed), rarely.
        #expect(fast.checkpoints.count * 10 >= slow.checkpoints.count * 8,
                "\(fast.checkpoints.count) vs zlib's \(slow.checkpoints.count)")
        #expect(fast.checkpoints.count >= Int(UInt64(input.count) / spacing / 2))
        for (a, b) in zip(fast.checkpoints, fast.checkpoints.dropFirst()) {
            #expect(b.uncompressedOffset >= a.uncompressedOffset + spacing)
        }
        // Leaps find a boundary in a few calls (slicing alone took one per 128 bytes of a block).
        #expect(fast.stats.leaps > 0 && fast.stats.sliceCalls + fast.stats.leaps <= 30 * fast.checkpoints.count, "\(fast.stats)")
        try Self.expectCheckpointsWork(fast.checkpoints, file, input)
    }

    /// The layout `save` relies on is the one isa-l has here (else leaps would silently be off).
    @Test func isalStateCanBeSaved() { #expect(IsalInflater.canSave) }

    /// `save` and `restore` put the decoder back where it was: the same input then decodes to
    /// the same output, however far it had gone meanwhile.
    @Test func savedInflaterStateDecodesAgainAlike() throws {
        let input = Array(Self.medium[0..<(3 << 20)])
        let member = Gzip.compress(input)
        let deflate = Array(member[10...])   // zlib's gzip header has no optional fields
        let inflater = IsalInflater()
        var out = [UInt8](repeating: 0, count: input.count + 1)
        var used = 0, produced = 0
        func step(_ count: Int) throws -> CodecStep {
            try deflate.withUnsafeBufferPointer { d in
                try out.withUnsafeMutableBufferPointer { o in
                    try inflater.inflate(input: d.baseAddress! + used, inputCount: min(count, d.count - used),
                                         output: o.baseAddress! + produced, outputCount: o.count - produced, inputOffset: 0)
                }
            }
        }
        var s = try step(700_000)
        used += s.consumed; produced += s.produced
        inflater.save()
        let (savedUsed, savedProduced) = (used, produced)
        s = try step(900_000)
        let first = Array(out[savedProduced..<(savedProduced + s.produced)])
        #expect(s.produced > 0)
        for _ in 0..<3 {
            s = try step(333)   // more, to be undone
            used += s.consumed; produced += s.produced
        }
        inflater.restore()
        (used, produced) = (savedUsed, savedProduced)
        #expect(!inflater.codeChangedSinceSave)
        s = try step(900_000)
        #expect(Array(out[savedProduced..<(savedProduced + s.produced)]) == first)
        #expect(inflater.codeChangedSinceSave, "900 kB of deflate cross a block header")
        used += s.consumed; produced += s.produced
        while !s.ended {
            s = try step(1 << 20)
            used += s.consumed; produced += s.produced
        }
        #expect(produced == input.count && same(Array(out[0..<produced]), input))
    }

    /// Static-Huffman blocks have 3-bit headers that slices hardly ever end in: the member falls back to zlib.
    @Test func staticBlocksFallBackToZlib() throws {
        let input = Self.medium
        let blob = Gzip.compress(input, level: 6, strategy: 4 /* Z_FIXED */)
        let file = try TempFile(blob)
        defer { file.remove() }
        let fast = try Self.run(file, size: blob.count, spacing: 256 << 10, isal: true)
        let slow = try Self.run(file, size: blob.count, spacing: 256 << 10, isal: false)
        #expect(same(fast.output, input))
        #expect(fast.stats.fallbacks == 1, "\(fast.stats)")
        #expect(fast.checkpoints.count * 3 >= slow.checkpoints.count * 2, "\(fast.checkpoints.count) vs zlib's \(slow.checkpoints.count)")
        try Self.expectCheckpointsWork(fast.checkpoints, file, input)
    }

    /// Block shapes of other compressors, each alone and all as members of one blob.
    @Test(arguments: ["gzip -1", "gzip -9", "pigz -p 2 -6", "pigz -p 2 -9 -i", "igzip -0", "igzip -1", "igzip -3",
                      "multi"])
    func externalCompressors(tool: String) throws {
        let input = Self.medium
        let source = try TempFile(input)
        defer { source.remove() }
        let out = source.path + ".gz"
        defer { unlink(out) }
        let command: String
        if tool == "multi" {
            // Three members from three compressors, zero padding after them.
            let third = input.count / 3
            let parts = [(0, third), (third, 2 * third), (2 * third, input.count)]
            var pieces: [String] = []
            for (i, (from, to)) in parts.enumerated() {
                let piece = try TempFile(Array(input[from..<to]))
                pieces.append(piece.path)
                piece.fd.close()
                _ = i
            }
            command = "(gzip -6 -c \(pieces[0]); pigz -p 2 -c \(pieces[1]); igzip -2 -c \(pieces[2]); head -c 1000 /dev/zero) > \(out)"
                + "; rm -f \(pieces.joined(separator: " "))"
        } else {
            command = "\(tool) -c \(source.path) > \(out)"
        }
        let status = system(command)
        #expect(status == 0, "\(command) failed")
        if status != 0 { return }
        let blob = try FileIO.readAll(out)
        let file = try TempFile(blob)
        defer { file.remove() }
        let spacing: UInt64 = 192 << 10
        let fast = try Self.run(file, size: blob.count, spacing: spacing, isal: true)
        let slow = try Self.run(file, size: blob.count, spacing: spacing, isal: false)
        #expect(same(fast.output, input), "\(tool)")
        #expect(same(slow.output, input), "\(tool)")
        #expect(fast.hashed == SHA256Hasher.hash(blob) && fast.consumed == UInt64(blob.count))
        #expect(fast.stats.rejected == 0, "\(tool): \(fast.stats)")
        #expect(fast.checkpoints.count * 10 >= slow.checkpoints.count * 7,
                "\(tool): \(fast.checkpoints.count) vs zlib's \(slow.checkpoints.count), \(fast.stats)")
        try Self.expectCheckpointsWork(fast.checkpoints, file, input)
        // Tar-sized reads: same stream, same checkpoints.
        if tool == "multi" {
            let small = try Self.run(file, size: blob.count, spacing: spacing, isal: true, readSize: 512)
            #expect(same(small.output, input) && small.checkpoints == fast.checkpoints)
            #expect(fast.stats.members == 3)
        }
    }

    /// Corruption in the isa-l path is reported like zlib's.
    @Test func corruptionKinds() throws {
        let input = Array(Self.medium[0..<400_000])
        let blob = Gzip.compress(input)
        for position in stride(from: 100, to: blob.count - 100, by: blob.count / 9) {
            var bad = blob
            bad[position] ^= 0x5a
            let file = try TempFile(bad)
            defer { file.remove() }
            let kind = codecErrorKind { _ = try Self.run(file, size: bad.count, spacing: 64 << 10, isal: true) }
            #expect(kind == .corrupt, "flip at \(position) gave \(String(describing: kind))")
        }
        let cut = Array(blob[0..<(blob.count * 2 / 3)])
        let file = try TempFile(cut)
        defer { file.remove() }
        #expect(codecErrorKind { _ = try Self.run(file, size: cut.count, spacing: 64 << 10, isal: true) } == .truncated)
    }

    @Test func isalCRCMatchesZlib() {
        let bytes = Array(Self.medium[0..<100_001])
        let a = bytes.withUnsafeBufferPointer { isalCRC32(isalCRC32(0, $0.baseAddress!, 5), $0.baseAddress! + 5, $0.count - 5) }
        let b = bytes.withUnsafeBufferPointer { crc32Update(0, $0.baseAddress!, $0.count) }
        #expect(a == b)
    }
}
