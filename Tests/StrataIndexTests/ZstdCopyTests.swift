import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSystem
import StrataTar
@testable import StrataIndex

/// Issue 10 point 5: a zstd layer whose frames are too large to decode per read is re-encoded
/// while indexing into a copy of small independent frames, listed in the index.
@Suite struct ZstdCopyTests {
    static func tar(_ big: [UInt8]) throws -> [UInt8] {
        try TarWriter.archive([
            (entry("a", size: 6), Array("first\n".utf8)),
            (entry("big.bin", size: big.count), big),
            (entry("z", size: 5), Array("last\n".utf8)),
        ])
    }

    static func readAll(_ data: LayerData, _ e: IndexEntry) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(e.size))
        try out.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
        return out
    }

    @Test func singleFrameLayerIsServedFromItsFramedCopy() throws {
        let s = Scratch()
        let big = content(21 << 20, seed: 5)
        let tar = try Self.tar(big)
        let blob = try s.blob(Zstd.compress(tar), .zstd)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let (index, built) = try cache.index(blob)
        #expect(built)
        let copyPath = cache.dataPath(digestHex: blob.digestHex)
        let copy = try FileIO.readAll(copyPath)
        #expect(index.copySize == UInt64(copy.count))
        // Every span is a copy frame of at most 4 MiB, one after another in the copy.
        var expectedOffset: UInt64 = 0
        for i in 0..<index.checkpointCount {
            let frame = try #require(index.copyFrame(i))
            #expect(frame.offset == expectedOffset)
            expectedOffset += UInt64(frame.size)
            #expect(index.spanEnd(i) - index.checkpointOffsets(i).uncompressed <= UInt64(FrameRecoder.frameSize))
        }
        #expect(expectedOffset == UInt64(copy.count))
        #expect(index.checkpointCount == (tar.count + FrameRecoder.frameSize - 1) / FrameRecoder.frameSize)
        // The frames decode back to the stream.
        let decoded = try Zstd.decompress(copy) == tar
        #expect(decoded)

        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: copyPath, indexCache: cache)
        let same = try Self.readAll(data, index.entry(1)) == big
        #expect(same)
        var got: [UInt8] = []
        try data.read(offset: index.entry(2).dataOffset, count: 5) { got = Array($0) }
        #expect(got == Array("last\n".utf8))
        #expect(data.repairs == 0)
        // Deterministic: a second build gives the same index and copy.
        let again = "\(s.path)/again.zst"
        let sameIndex = try IndexBuilder.build(blob, copyPath: again) == FileIO.readAll(cache.indexPath(digestHex: blob.digestHex))
        let sameCopy = try FileIO.readAll(again) == copy
        #expect(sameIndex && sameCopy)
    }

    @Test func smallFramesNeedNoCopy() throws {
        let s = Scratch()
        let big = content(9 << 20, seed: 6)
        let blob = try s.blob(Zstd.compress(try Self.tar(big), frameSize: 1 << 20), .zstd)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let index = try cache.index(blob).index
        #expect(index.copySize == 0)
        #expect(!FileIO.exists(cache.dataPath(digestHex: blob.digestHex)))
        #expect((0..<index.checkpointCount).allSatisfy { index.copyFrame($0) == nil })
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: cache.dataPath(digestHex: blob.digestHex))
        let same = try Self.readAll(data, index.entry(1)) == big
        #expect(same)
    }

    /// Small frames, then one large frame, then small ones: only the large one is copied.
    @Test func onlyLargeFramesAreCopied() throws {
        let s = Scratch()
        let big = content(30 << 20, seed: 8)
        let tar = try Self.tar(big)
        let first = 3 << 20, largeEnd = 25 << 20
        let blobBytes = Zstd.compress(Array(tar[0..<first]), frameSize: 1 << 20)
            + Zstd.compress(Array(tar[first..<largeEnd]))
            + Zstd.compress(Array(tar[largeEnd...]), frameSize: 1 << 20)
        let blob = try s.blob(blobBytes, .zstd)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let index = try cache.index(blob).index
        var copied: [Range<UInt64>] = []
        for i in 0..<index.checkpointCount {
            let start = index.checkpointOffsets(i).uncompressed
            if index.copyFrame(i) != nil { copied.append(start..<index.spanEnd(i)) }
            else { #expect(index.spanEnd(i) - start <= 1 << 20) }
        }
        #expect(copied.first?.lowerBound == UInt64(first))
        #expect(copied.last?.upperBound == UInt64(largeEnd))
        #expect(copied.count == (largeEnd - first + FrameRecoder.frameSize - 1) / FrameRecoder.frameSize)
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: cache.dataPath(digestHex: blob.digestHex), indexCache: cache)
        let same = try Self.readAll(data, index.entry(1)) == big
        #expect(same)
    }

    @Test func damagedCopyIsRebuilt() throws {
        let s = Scratch()
        let big = content(12 << 20, seed: 9)
        let blob = try s.blob(Zstd.compress(try Self.tar(big)), .zstd)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let index = try cache.index(blob).index
        let copyPath = cache.dataPath(digestHex: blob.digestHex)
        let good = try FileIO.readAll(copyPath)
        for at in stride(from: 100, to: good.count, by: good.count / 5) { try IndexDamageTests.flip(copyPath, at: at) }
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: copyPath, indexCache: cache)
        let same = try Self.readAll(data, index.entry(1)) == big
        #expect(same)
        #expect(data.repairs == 1)
        let restored = try FileIO.readAll(copyPath) == good
        #expect(restored)

        // A copy that went missing (evicted) is remade when the index is opened.
        unlink(copyPath)
        #expect(try cache.index(blob, verify: false).built)
        let remade = try FileIO.readAll(copyPath) == good
        #expect(remade)
    }

    /// A zstd bomb: 1 GiB of zeros in one frame (tens of KB). Its copy follows the data's
    /// compressibility: at most twice the blob, index included.
    @Test func zstdBombCopyStaysSmall() throws {
        let s = Scratch()
        let size: UInt64 = 1 << 30
        let path = "\(s.path)/bomb"
        let fd = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC)
        do {
            defer { fd.close() }
            let writer = try CompressingWriter(compression: .zstd, file: fd, level: 3)
            try writer.write(try TarWriter.header(for: entry("zeros", size: Int(size))))
            let zeros = [UInt8](repeating: 0, count: 1 << 20)
            for _ in 0..<(size >> 20) { try writer.write(zeros) }
            try writer.write(TarWriter.endOfArchive)
            try writer.finish()
        }
        let blobBytes = try FileIO.readAll(path)
        let blob = LayerBlob(path: path, digestHex: SHA256Hasher.hex(of: blobBytes), size: UInt64(blobBytes.count), compression: .zstd)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let index = try cache.index(blob).index
        let copySize = UInt64(try FileIO.readAll(cache.dataPath(digestHex: blob.digestHex)).count)
        let indexSize = UInt64(try FileIO.readAll(cache.indexPath(digestHex: blob.digestHex)).count)
        #expect(index.copySize == copySize)
        #expect(copySize + indexSize <= 2 * blob.size, "blob \(blob.size), copy \(copySize), index \(indexSize)")
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: cache.dataPath(digestHex: blob.digestHex), indexCache: cache)
        let e = index.entry(0)
        for offset in [0, size / 2 + 12345, size - 100] {
            var got: [UInt8] = []
            try data.read(offset: e.dataOffset + offset, count: 100) { got = Array($0) }
            #expect(got == [UInt8](repeating: 0, count: 100))
        }
    }
}
