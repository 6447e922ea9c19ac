import Testing
import StrataCodec
import StrataHash

@Suite struct ZstdIndexingTests {
    @Test func multiFrameCheckpointPerFrame() throws {
        let input = mixedData(size: 3 << 20 + 777, seed: 5)
        let frameSize = 256 << 10
        let blob = Zstd.compress(input, frameSize: frameSize)
        let file = try TempFile(blob)
        defer { file.remove() }
        let result = try index(.zstd, file, blobSize: UInt64(blob.count))
        #expect(same(result.output, input))
        #expect(result.hashed == SHA256Hasher.hash(blob))
        #expect(result.consumed == UInt64(blob.count))
        let frames = (input.count + frameSize - 1) / frameSize
        #expect(result.checkpoints.count == frames)
        #expect(result.checkpoints[0].compressedOffset == 0)
        let decoder = SpanDecoder(compression: .zstd)
        for (i, checkpoint) in result.checkpoints.enumerated() {
            #expect(checkpoint.uncompressedOffset == UInt64(i * frameSize))
            let start = i * frameSize
            let length = min(frameSize, input.count - start)
            let whole = try decodeSpan(decoder, file, checkpoint, count: frameSize + 10)
            #expect(whole.count == length)
            #expect(whole.withUnsafeBytes { same($0, input, start..<(start + length)) })
            let skip = length / 2
            let part = try decodeSpan(decoder, file, checkpoint, skip: UInt64(skip), count: 1000)
            let expected = (start + skip)..<(start + min(skip + 1000, length))
            #expect(part.withUnsafeBytes { same($0, input, expected) })
        }
    }

    @Test func singleFrame() throws {
        let input = mixedData(size: 2 << 20, seed: 9)
        let blob = Zstd.compress(input, level: 1)
        let file = try TempFile(blob)
        defer { file.remove() }
        let result = try index(.zstd, file, blobSize: UInt64(blob.count))
        #expect(same(result.output, input))
        #expect(result.checkpoints == [Checkpoint(compressedOffset: 0, uncompressedOffset: 0)])
        let part = try decodeSpan(SpanDecoder(compression: .zstd), file, result.checkpoints[0], skip: 1_500_000, count: 1 << 20)
        #expect(part.count == input.count - 1_500_000)
        #expect(part.withUnsafeBytes { same($0, input, 1_500_000..<input.count) })
    }

    static func skippableFrame(_ payload: [UInt8], variant: UInt8 = 0) -> [UInt8] {
        let size = UInt32(payload.count)
        return [0x50 | variant, 0x2A, 0x4D, 0x18, UInt8(size & 0xff), UInt8(size >> 8 & 0xff), UInt8(size >> 16 & 0xff), UInt8(size >> 24)]
            + payload
    }

    @Test func skippableFramesAreSkipped() throws {
        let a = Array("first frame ".utf8), b = mixedData(size: 100_000, seed: 2)
        let blob = Self.skippableFrame(Array("meta".utf8)) + Zstd.compress(a) + Self.skippableFrame([], variant: 3)
            + Zstd.compress(b) + Self.skippableFrame(Array(repeating: 7, count: 300), variant: 15)
        #expect(try Zstd.decompress(blob) == a + b)
        let file = try TempFile(blob)
        defer { file.remove() }
        let result = try index(.zstd, file, blobSize: UInt64(blob.count))
        #expect(result.output == a + b)
        #expect(result.checkpoints.map(\.uncompressedOffset) == [0, UInt64(a.count)])
        let decoder = SpanDecoder(compression: .zstd)
        #expect(try decodeSpan(decoder, file, result.checkpoints[0], count: 1000) == a)
        #expect(try decodeSpan(decoder, file, result.checkpoints[1], count: 200_000) == b)
    }
}
