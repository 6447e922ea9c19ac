import Testing
import StrataCodec
import StrataHash

@Suite struct GzipIndexingTests {
    @Test func largeMixedBlobCheckpointsDecodeEverySlice() throws {
        let input = mixedData(size: 20 << 20 + 12345)
        let blob = Gzip.compress(input)
        let file = try TempFile(blob)
        defer { file.remove() }
        let spacing: UInt64 = 256 << 10
        let result = try index(.gzip, file, blobSize: UInt64(blob.count), spacing: spacing)

        #expect(same(result.output, input))
        #expect(result.hashed == SHA256Hasher.hash(blob))
        #expect(result.hashedCount == UInt64(blob.count))
        #expect(result.consumed == UInt64(blob.count))
        #expect(result.produced == UInt64(input.count))

        let checkpoints = result.checkpoints
        #expect(checkpoints.count > 50, "\(checkpoints.count) checkpoints")
        #expect(checkpoints[0].uncompressedOffset == 0 && checkpoints[0].compressedOffset == 10 && checkpoints[0].window.isEmpty)
        #expect(checkpoints.contains { $0.bits != 0 })
        for (a, b) in zip(checkpoints, checkpoints.dropFirst()) {
            #expect(b.uncompressedOffset >= a.uncompressedOffset + spacing)
            #expect(b.compressedOffset > a.compressedOffset)
            #expect(b.bits <= 7 && b.window.count == 32 << 10)
        }

        let decoder = SpanDecoder(compression: .gzip)
        for (i, checkpoint) in checkpoints.enumerated() {
            let start = Int(checkpoint.uncompressedOffset)
            let end = i + 1 < checkpoints.count ? Int(checkpoints[i + 1].uncompressedOffset) : input.count
            // From the checkpoint to past the next one.
            let whole = try decodeSpan(decoder, file, checkpoint, count: min(end - start + 5000, input.count - start))
            #expect(whole.withUnsafeBytes { same($0, input, start..<(start + whole.count)) })
            #expect(whole.count == min(end - start + 5000, input.count - start))
            // With a skip.
            let skip = (end - start) / 3 + i
            let part = try decodeSpan(decoder, file, checkpoint, skip: UInt64(skip), count: 4096)
            #expect(part.withUnsafeBytes { same($0, input, (start + skip)..<(start + skip + 4096)) })
        }
        // A buffer past the end of the member stops at its end.
        let last = checkpoints.last!
        let tail = try decodeSpan(decoder, file, last, count: input.count)
        #expect(tail.count == input.count - Int(last.uncompressedOffset))
    }

    /// A decode in steps over a blob in memory reads it in place: same bytes as from the file,
    /// the memory left as it was, and a piece cut short ends the decode with an error.
    @Test func stepsOverABlobInMemoryReadItInPlace() throws {
        let input = mixedData(size: 3 << 20, seed: 5)
        let blob = Gzip.compress(input)
        let file = try TempFile(blob)
        defer { file.remove() }
        let checkpoints = try index(.gzip, file, blobSize: UInt64(blob.count), spacing: 1 << 20).checkpoints
        try #require(checkpoints.count >= 3)
        let c = checkpoints[1], next = checkpoints[2]
        let piece = Array(blob[Int(c.compressedOffset - 1)..<Int(next.compressedOffset + 1)])
        let want = Int(next.uncompressedOffset - c.uncompressedOffset)
        let decoder = SpanDecoder(compression: .gzip)
        try piece.withUnsafeBytes { bytes in
            try decoder.begin(blob: BlobFile(bytes: bytes, at: c.compressedOffset - 1), from: c)
            var out = [UInt8](repeating: 0, count: want)
            var filled = 0
            for step in [1000, 70_000, want] where filled < want {
                let n = try out.withUnsafeMutableBytes { try decoder.decodeMore(into: UnsafeMutableRawBufferPointer(rebasing: $0[filled..<min(want, filled + step)])) }
                filled += n
            }
            #expect(filled == want)
            #expect(out.withUnsafeBytes { same($0, input, Int(c.uncompressedOffset)..<Int(next.uncompressedOffset)) })
        }
        #expect(piece == Array(blob[Int(c.compressedOffset - 1)..<Int(next.compressedOffset + 1)]))
        // Cut short: the decode runs out of input and says so.
        let short = Array(piece[0..<(piece.count / 2)])
        try short.withUnsafeBytes { bytes in
            try decoder.begin(blob: BlobFile(bytes: bytes, at: c.compressedOffset - 1), from: c)
            var out = [UInt8](repeating: 0, count: want)
            #expect(throws: CodecError.self) { _ = try out.withUnsafeMutableBytes { try decoder.decodeMore(into: $0) } }
        }
    }

    @Test func manyMembersIncludingEmptyOnes() throws {
        var parts: [[UInt8]] = [[]]
        for i in 0..<1000 { parts.append(Array("file \(i): \(String(repeating: "x", count: i % 37))\n".utf8)) }
        parts.insert([], at: 500)
        parts.append(mixedData(size: 300_000, seed: 7))
        parts.append([])
        let input = parts.flatMap { $0 }
        let blob = Gzip.compressMembers(parts)
        #expect(try Gzip.decompress(blob) == input)

        let file = try TempFile(blob)
        defer { file.remove() }
        let result = try index(.gzip, file, blobSize: UInt64(blob.count), spacing: 64 << 10)
        #expect(result.output == input)
        #expect(result.hashed == SHA256Hasher.hash(blob))
        // Tar-sized reads give the same stream and the same checkpoints.
        let small = try index(.gzip, file, blobSize: UInt64(blob.count), spacing: 64 << 10, readSize: 512)
        #expect(small.output == input && small.checkpoints == result.checkpoints)

        // One checkpoint per non-empty member, plus block checkpoints inside the big one.
        let nonEmpty = parts.filter { !$0.isEmpty }
        let memberStarts = result.checkpoints.filter { $0.window.isEmpty }
        #expect(memberStarts.count == nonEmpty.count)
        #expect(result.checkpoints.count > nonEmpty.count)
        for (a, b) in zip(result.checkpoints, result.checkpoints.dropFirst()) {
            #expect(b.uncompressedOffset > a.uncompressedOffset)
        }

        let decoder = SpanDecoder(compression: .gzip)
        var offset = 0
        var startIndex = 0
        for part in parts {
            defer { offset += part.count }
            if part.isEmpty { continue }
            let checkpoint = memberStarts[startIndex]
            startIndex += 1
            #expect(checkpoint.uncompressedOffset == UInt64(offset))
            // Decoding stops at the member's end even with a larger buffer.
            let decoded = try decodeSpan(decoder, file, checkpoint, count: part.count + 100)
            #expect(decoded == part)
        }
    }

    @Test func headerWithExtraNameCommentAndHeaderCRC() throws {
        let content = Array("hello, header fields\n".utf8) + mixedData(size: 50_000, seed: 3)
        let plain = Gzip.compress(content)
        let body = Array(plain[10...])   // zlib writes a bare 10-byte header
        var header: [UInt8] = [0x1f, 0x8b, 8, 4 | 8 | 16 | 2, 1, 2, 3, 4, 0, 3]
        header += [5, 0] + Array("abcde".utf8)
        header += Array("hello.txt".utf8) + [0]
        header += Array("a comment".utf8) + [0]
        let crc = crc32Reference(header)
        let blob = header + [UInt8(crc & 0xff), UInt8(crc >> 8 & 0xff)] + body
        #expect(try Gzip.decompress(blob) == content)

        let file = try TempFile(blob)
        defer { file.remove() }
        let result = try index(.gzip, file, blobSize: UInt64(blob.count))
        #expect(result.output == content)
        #expect(result.checkpoints == [Checkpoint(compressedOffset: UInt64(header.count + 2), uncompressedOffset: 0)])
        let decoded = try decodeSpan(SpanDecoder(compression: .gzip), file, result.checkpoints[0], skip: 7, count: 100)
        #expect(decoded[...] == content[7..<107])

        var badHeaderCRC = blob
        badHeaderCRC[header.count] ^= 0xff
        #expect(codecErrorKind { _ = try Gzip.decompress(badHeaderCRC) } == .corrupt)
    }

    @Test func noneIsPassThrough() throws {
        let input = mixedData(size: 3_000_000, seed: 11)
        let file = try TempFile(input)
        defer { file.remove() }
        let result = try index(.none, file, blobSize: UInt64(input.count))
        #expect(same(result.output, input))
        #expect(result.checkpoints == [Checkpoint(compressedOffset: 0, uncompressedOffset: 0)])
        #expect(result.hashed == SHA256Hasher.hash(input))
        let decoded = try decodeSpan(SpanDecoder(compression: .none), file, result.checkpoints[0], skip: 1_000_000, count: 10)
        #expect(decoded[...] == input[1_000_000..<1_000_010])
    }
}

@Suite struct EarlyFinishTests {
    /// A tar reader stops at its end-of-archive blocks; finish() still checks and hashes the rest.
    @Test(arguments: [LayerCompression.gzip, .zstd, .none])
    func finishDrainsTheRest(compression: LayerCompression) throws {
        let input = mixedData(size: 1_500_000, seed: 13)
        let blob: [UInt8]
        switch compression {
        case .gzip: blob = Gzip.compressMembers([Array(input[0..<700_000]), Array(input[700_000...])]) + [0, 0]
        case .zstd: blob = Zstd.compress(input, frameSize: 500_000)
        case .none: blob = input
        }
        let file = try TempFile(blob)
        defer { file.remove() }
        let hasher = SHA256Hasher()
        let decoder = IndexingDecoder(compression: compression, file: file.fd, blobSize: UInt64(blob.count)) { hasher.update($0) }
        var chunk = [UInt8](repeating: 0, count: 10_000)
        #expect(try chunk.withUnsafeMutableBytes { try decoder.read(into: $0) } == 10_000)
        #expect(chunk[...] == input[0..<10_000])
        try decoder.finish()
        #expect(decoder.compressedBytesConsumed == UInt64(blob.count))
        #expect(hasher.finalize() == SHA256Hasher.hash(blob))
        if compression != .none { #expect(decoder.checkpoints.count == (compression == .gzip ? 2 : 3)) }

        if compression == .gzip {
            // A bad CRC in the part never read is still found.
            var bad = blob
            bad[bad.count - 10] ^= 1
            let badFile = try TempFile(bad)
            defer { badFile.remove() }
            let badDecoder = IndexingDecoder(compression: .gzip, file: badFile.fd, blobSize: UInt64(bad.count)) { _ in }
            _ = try chunk.withUnsafeMutableBytes { try badDecoder.read(into: $0) }
            #expect(codecErrorKind { try badDecoder.finish() } == .corrupt)
        }
    }
}
