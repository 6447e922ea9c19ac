import Testing
import StrataCodec

@Suite struct CompressorTests {
    static let samples: [[UInt8]] = [[], [42], Array("hello hello hello".utf8), mixedData(size: 1 << 20, seed: 4)]

    /// A bomb (4 MiB of zeros in a few KiB) stops at the limit instead of filling memory.
    @Test func wholeBufferDecodeStopsAtItsLimit() throws {
        let zeros = [UInt8](repeating: 0, count: 4 << 20)
        #expect(throws: CodecError.self) { try Gzip.decompress(Gzip.compress(zeros), limit: 1 << 20) }
        #expect(throws: CodecError.self) { try Zstd.decompress(Zstd.compress(zeros), limit: 1 << 20) }
        #expect(try Gzip.decompress(Gzip.compress(zeros), limit: 4 << 20) == zeros)
    }

    @Test func gzipRoundTrip() throws {
        for sample in Self.samples {
            for level: Int32 in [1, 6, 9] {
                let blob = Gzip.compress(sample, level: level)
                #expect(try Gzip.decompress(blob) == sample)
                #expect(try decodeWithSystemTool("gzip", blob) == sample)
            }
        }
        let members = Gzip.compressMembers(Self.samples)
        #expect(try Gzip.decompress(members) == Self.samples.flatMap { $0 })
        #expect(try decodeWithSystemTool("gzip", members) == Self.samples.flatMap { $0 })
    }

    /// One compressor used again and again gives each buffer the bytes a fresh one gives it
    /// (an index's stored windows must come out the same however they were made).
    @Test func reusedGzipCompressorGivesFreshOutput() throws {
        let compressor = Gzip.Compressor(level: 2)
        for sample in Self.samples + Self.samples.reversed() {
            let blob = compressor.compress(sample)
            #expect(blob == Gzip.compress(sample, level: 2))
            #expect(try Gzip.decompress(blob) == sample)
        }
    }

    /// A checkpoint's stored window: one member of exactly the recorded length, nothing else.
    @Test func storedWindowDecodesOnlyAsOneMemberOfItsLength() throws {
        let window = mixedData(size: 32 << 10, seed: 9)
        let stored = Gzip.compress(window, level: 2)
        #expect(try Gzip.decompress(member: stored, exactly: window.count) == window)
        #expect(try Gzip.decompress(member: Gzip.compress([], level: 2), exactly: 0) == [])
        #expect(throws: CodecError.self) { try Gzip.decompress(member: stored, exactly: window.count - 1) }
        #expect(throws: CodecError.self) { try Gzip.decompress(member: stored, exactly: window.count + 1) }
        #expect(throws: CodecError.self) { try Gzip.decompress(member: stored + [0], exactly: window.count) }
        #expect(throws: CodecError.self) { try Gzip.decompress(member: Array(stored.dropLast(4)), exactly: window.count) }
        var bad = stored
        bad[bad.count - 6] ^= 0x40   // the CRC
        #expect(throws: CodecError.self) { try Gzip.decompress(member: bad, exactly: window.count) }
    }

    @Test func zstdRoundTrip() throws {
        for sample in Self.samples {
            for blob in [Zstd.compress(sample), Zstd.compress(sample, level: 19, frameSize: 1000)] {
                #expect(try Zstd.decompress(blob) == sample)
                #expect(try decodeWithSystemTool("zstd", blob) == sample)
            }
        }
    }

    /// `endUnit` cuts the stream where the caller says (eStargz members, zstd:chunked frames): each
    /// unit starts where `compressedBytesWritten` said and decodes on its own; empty units and a
    /// `finish` right after `endUnit` add nothing; `onOutput` sees exactly the blob.
    @Test(arguments: [LayerCompression.gzip, .zstd])
    func endUnitCutsMembersAndFrames(compression: LayerCompression) throws {
        let pieces = [mixedData(size: 70_000, seed: 1), Array("small".utf8), mixedData(size: 300_000, seed: 2)]
        let file = try TempFile()
        defer { file.remove() }
        let writer = try CompressingWriter(compression: compression, file: file.fd)
        var seen: [UInt8] = []
        writer.onOutput = { seen += $0 }
        var starts: [Int] = []
        for piece in pieces {
            starts.append(Int(writer.compressedBytesWritten))
            try writer.write(piece)
            try writer.endUnit()
            try writer.endUnit()                      // nothing written since: no empty unit
        }
        let end = Int(writer.compressedBytesWritten)
        try writer.finish()
        let blob = try file.contents()
        #expect(blob.count == end && seen == blob)
        let bounds = starts + [end]
        for (i, piece) in pieces.enumerated() {
            let unit = Array(blob[bounds[i]..<bounds[i + 1]])
            let decoded = compression == .gzip ? try Gzip.decompress(unit) : try Zstd.decompress(unit)
            #expect(decoded == piece, "unit \(i)")
        }
        let all = compression == .gzip ? try Gzip.decompress(blob) : try Zstd.decompress(blob)
        #expect(all == pieces.flatMap { $0 })
    }

    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func compressingWriterRoundTrip(compression: LayerCompression) throws {
        let input = mixedData(size: 2_500_000, seed: 8)
        for frameSize in [nil, 300_000] as [Int?] {
            let file = try TempFile()
            defer { file.remove() }
            let writer = try CompressingWriter(compression: compression, file: file.fd, level: nil, zstdFrameSize: frameSize)
            var from = 0
            var piece = 1
            while from < input.count {
                let n = min(piece, input.count - from)
                try input.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[from..<(from + n)])) }
                from += n
                piece = piece * 3 + 1
            }
            try writer.finish()
            let blob = try file.contents()
            #expect(writer.compressedBytesWritten == UInt64(blob.count))
            switch compression {
            case .none: #expect(same(blob, input))
            case .gzip:
                #expect(same(try Gzip.decompress(blob), input))
                #expect(same(try decodeWithSystemTool("gzip", blob), input))
            case .zstd:
                #expect(same(try Zstd.decompress(blob), input))
                #expect(same(try decodeWithSystemTool("zstd", blob), input))
                let result = try index(.zstd, file, blobSize: UInt64(blob.count))
                #expect(result.checkpoints.count == (frameSize.map { (input.count + $0 - 1) / $0 } ?? 1))
            }
        }
    }

    @Test func compressingWriterEmptyStream() throws {
        for compression in [LayerCompression.gzip, .zstd] {
            let file = try TempFile()
            defer { file.remove() }
            let writer = try CompressingWriter(compression: compression, file: file.fd, level: 3)
            try writer.finish()
            let blob = try file.contents()
            let decoded = compression == .gzip ? try Gzip.decompress(blob) : try Zstd.decompress(blob)
            #expect(decoded.isEmpty && !blob.isEmpty)
            #expect(try decodeWithSystemTool(compression == .gzip ? "gzip" : "zstd", blob).isEmpty)
        }
    }
}
