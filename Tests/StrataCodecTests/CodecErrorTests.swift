import Testing
import StrataCodec

@Suite struct CodecErrorTests {
    static let text = mixedData(size: 400_000, seed: 21)

    func indexKind(_ compression: LayerCompression, _ blob: [UInt8], blobSize: UInt64? = nil) throws -> CodecError.Kind? {
        let file = try TempFile(blob)
        defer { file.remove() }
        return codecErrorKind { _ = try index(compression, file, blobSize: blobSize ?? UInt64(blob.count)) }
    }

    @Test func truncatedGzip() throws {
        let blob = Gzip.compress(Self.text)
        let cut = Array(blob[0..<(blob.count / 2)])
        #expect(try indexKind(.gzip, cut) == .truncated)
        #expect(codecErrorKind { _ = try Gzip.decompress(cut) } == .truncated)
        // Trailer cut short, header cut short, file shorter than the declared size.
        #expect(codecErrorKind { _ = try Gzip.decompress(Array(blob.dropLast(3))) } == .truncated)
        #expect(codecErrorKind { _ = try Gzip.decompress(Array(blob[0..<5])) } == .truncated)
        #expect(try indexKind(.gzip, blob, blobSize: UInt64(blob.count + 100)) == .truncated)
        #expect(codecErrorKind { _ = try Gzip.decompress([]) } == .truncated)
    }

    @Test func flippedDeflateBytes() throws {
        let blob = Gzip.compress(Self.text)
        for position in stride(from: 100, to: blob.count - 100, by: blob.count / 7) {
            var bad = blob
            bad[position] ^= 0x5a
            let kind = try indexKind(.gzip, bad)
            #expect(kind == .corrupt, "flip at \(position) gave \(String(describing: kind))")
        }
    }

    @Test func trailerMismatch() throws {
        var blob = Gzip.compress(Self.text)
        blob[blob.count - 8] ^= 1
        #expect(codecErrorKind { _ = try Gzip.decompress(blob) } == .corrupt)
        do {
            _ = try Gzip.decompress(blob)
        } catch let error as CodecError {
            #expect(error.message.contains("CRC"))
            #expect(error.compressedOffset == UInt64(blob.count - 8))
        }
        var sizeBad = Gzip.compress(Self.text)
        sizeBad[sizeBad.count - 1] ^= 1
        #expect(codecErrorKind { _ = try Gzip.decompress(sizeBad) } == .corrupt)
    }

    @Test func trailingZerosAccepted() throws {
        let gz = Gzip.compress(Self.text) + [UInt8](repeating: 0, count: 5000)
        let file = try TempFile(gz)
        defer { file.remove() }
        let result = try index(.gzip, file, blobSize: UInt64(gz.count))
        #expect(result.output == Self.text)
        #expect(result.hashedCount == UInt64(gz.count) && result.consumed == UInt64(gz.count))
        #expect(try Zstd.decompress(Zstd.compress(Self.text) + [0, 0, 0, 0, 0, 0, 0]) == Self.text)
    }

    @Test func trailingGarbageRejected() throws {
        let gz = Gzip.compress(Self.text)
        #expect(try indexKind(.gzip, gz + Array("garbage".utf8)) == .trailingGarbage)
        #expect(try indexKind(.gzip, gz + [0, 0, 0, 1]) == .trailingGarbage)
        #expect(try indexKind(.gzip, gz + [0x1f, 0x8c, 0]) == .trailingGarbage)
        let zst = Zstd.compress(Self.text)
        #expect(try indexKind(.zstd, zst + Array("garbage".utf8)) == .trailingGarbage)
        #expect(try indexKind(.zstd, zst + [0, 0, 9]) == .trailingGarbage)
    }

    @Test func truncatedZstd() throws {
        let blob = Zstd.compress(Self.text, frameSize: 100_000)
        #expect(try indexKind(.zstd, Array(blob[0..<(blob.count / 2)])) == .truncated)
        #expect(try indexKind(.zstd, Array(blob.dropLast(1))) == .truncated)
        #expect(codecErrorKind { _ = try Zstd.decompress(Array(blob[0..<2])) } == .truncated)
        var bad = blob
        bad[blob.count / 2] ^= 0xff
        // The frame checksum (or the block structure) catches it: corrupt, not any error.
        #expect(codecErrorKind { _ = try Zstd.decompress(bad) } == .corrupt)
        #expect(codecErrorKind { _ = try Zstd.decompress(Array("not zstd".utf8)) } == .corrupt)
    }

    @Test func spanDecoderReportsTruncation() throws {
        let blob = Gzip.compress(Self.text)
        let file = try TempFile(Array(blob[0..<(blob.count / 2)]))
        defer { file.remove() }
        let decoder = SpanDecoder(compression: .gzip)
        #expect(codecErrorKind {
            _ = try decodeSpan(decoder, file, Checkpoint(compressedOffset: 10, uncompressedOffset: 0), count: Self.text.count)
        } == .truncated)
    }
}
