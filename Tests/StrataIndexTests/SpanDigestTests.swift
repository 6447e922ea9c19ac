import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataIndex

/// Issue 11, span digests: the index keeps a sha256 of each compressed span (plain tar: each
/// 1 MiB piece), and every span decoded from a blob is checked against it before it is served.
@Suite struct SpanDigestTests {
    /// A layer of several spans: two large files and a small one, indexed with 1 MiB spacing.
    struct Layer {
        let temp: TempDirectory
        let tar: [UInt8]
        let blob: LayerBlob
        let index: LayerIndex
        /// Where each file's data is in the stream.
        let files: [String: (offset: UInt64, bytes: [UInt8])]

        init(_ compression: LayerCompression) throws {
            temp = try TempDirectory()
            let first = content(5 << 20, seed: 3), second = content(3 << 20, seed: 5), small = Array("small\n".utf8)
            tar = try TarWriter.archive([
                (entry("first.bin", size: first.count), first),
                (entry("small.txt", size: small.count), small),
                (entry("second.bin", size: second.count), second),
            ])
            let bytes = compress(tar, compression)
            let path = temp.child("blob")
            try FileIO.writeAtomically(path, bytes)
            blob = LayerBlob(path: path, digestHex: SHA256Hasher.hex(of: bytes), size: UInt64(bytes.count), compression: compression)
            try FileIO.writeAtomically(temp.child("idx"), try IndexBuilder.build(blob, checkpointSpacing: 1 << 20))
            index = try LayerIndex(path: temp.child("idx"))
            var files: [String: (UInt64, [UInt8])] = [:]
            for i in 0..<index.entryCount {
                let e = index.entry(i)
                let name = String(decoding: e.path, as: UTF8.self)
                files[name] = (e.dataOffset, name == "first.bin" ? first : name == "second.bin" ? second : small)
            }
            self.files = files
        }

        func data() throws -> LayerData {
            try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 64 << 20, readAhead: 0),
                          copyPath: temp.child("copy"))
        }

        func read(_ data: LayerData, _ name: String) throws -> [UInt8] {
            let file = try #require(files[name])
            var out = [UInt8](repeating: 0, count: file.bytes.count)
            try out.withUnsafeMutableBytes { try data.copy(offset: file.offset, into: $0) }
            return out
        }
    }

    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func spanDigestsCoverTheBlobAndMatchItsBytes(_ compression: LayerCompression) throws {
        let layer = try Layer(compression)
        let blob = try FileIO.readAll(layer.blob.path)
        let index = layer.index
        #expect(index.spanCount > 3)
        #expect(index.spanRange(0).lowerBound == 0 && index.spanRange(index.spanCount - 1).upperBound == UInt64(blob.count))
        for i in 0..<index.spanCount {
            let r = index.spanRange(i)
            #expect(index.spanDigest(i) == SHA256Hasher.hash(Array(blob[Int(r.lowerBound)..<Int(r.upperBound)])), "span \(i)")
            if i > 0 { #expect(r.lowerBound == index.spanRange(i - 1).upperBound || r.lowerBound + 1 == index.spanRange(i - 1).upperBound) }
            if compression == .none {
                #expect(r.lowerBound == UInt64(i) << 20 && (r.count == 1 << 20 || i == index.spanCount - 1))
            }
        }
        // Decoding from a checkpoint reads only its span's bytes (the byte before, for a bit offset).
        if compression != .none {
            #expect(index.spanCount == index.checkpointCount)
            for i in 0..<index.checkpointCount {
                let c = try index.checkpoint(i)
                let r = index.spanRange(index.span(forCheckpoint: i))
                #expect(index.span(forCheckpoint: i) == i)
                #expect(r.lowerBound == (i == 0 ? 0 : c.compressedOffset - (c.bits > 0 ? 1 : 0)))
            }
        }
        // And everything reads back right through the verified path.
        let data = try layer.data()
        for name in layer.files.keys { #expect(try layer.read(data, name) == layer.files[name]!.bytes, "\(name)") }
    }

    /// gzip with checkpoints at bit offsets: some span starts one byte before its checkpoint.
    @Test func gzipSpansShareTheByteOfABitOffsetCheckpoint() throws {
        let layer = try Layer(.gzip)
        let shared = (1..<layer.index.spanCount).filter { layer.index.spanRange($0).lowerBound + 1 == layer.index.spanRange($0 - 1).upperBound }
        let bitCheckpoints = try (1..<layer.index.checkpointCount).filter { try layer.index.checkpoint($0).bits > 0 }
        #expect(!bitCheckpoints.isEmpty && shared == bitCheckpoints)
    }

    /// A blob byte changed after indexing: reads of its span fail naming blob and offset, and
    /// untouched spans still read.
    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func aChangedBlobByteFailsItsSpanOnly(_ compression: LayerCompression) throws {
        let layer = try Layer(compression)
        let index = layer.index
        // A byte in the middle of the span that holds the middle of second.bin.
        let second = try #require(layer.files["second.bin"])
        let target = second.offset + UInt64(second.bytes.count / 2)
        let span: Int
        if compression == .none {
            span = index.spanIndex(containing: target)
        } else {
            span = index.span(forCheckpoint: index.checkpointIndex(containing: target))
        }
        let r = index.spanRange(span)
        try IndexDamageTests.flip(layer.blob.path, at: Int(r.lowerBound + UInt64(r.count / 2)))
        let data = try layer.data()
        #expect(try layer.read(data, "small.txt") == Array("small\n".utf8))
        var head = [UInt8](repeating: 0, count: 4096)
        try head.withUnsafeMutableBytes { try data.copy(offset: layer.files["first.bin"]!.offset, into: $0) }
        #expect(head == Array(layer.files["first.bin"]!.bytes.prefix(4096)))
        let error = #expect(throws: SpanMismatch.self) {
            try data.read(offset: target, count: 100) { _ in Issue.record("bytes of a changed span were served") }
        }
        #expect(error?.span == span && error?.offset == r.lowerBound && error?.fetched == false)
        #expect(error?.description == "layer sha256:\(layer.blob.digestHex) changed after it was indexed: span \(span) at offset \(r.lowerBound)")
        // Still failing the second time (nothing bad was cached).
        #expect(throws: SpanMismatch.self) { try data.read(offset: target, count: 100) { _ in } }
    }

    /// A checkpoint recorded later than the hasher keeps bytes for: the spans it touches are
    /// hashed again from the blob, so the digests are right anyway.
    @Test func aLateCheckpointIsHashedAgainFromTheBlob() throws {
        let bytes = content(10 << 20, seed: 9)
        let hasher = SpanHasher(compression: .gzip)
        bytes.withUnsafeBytes { hasher.take($0) }
        let c0 = Checkpoint(compressedOffset: 10, uncompressedOffset: 0)
        hasher.advance(checkpoints: [c0], consumed: UInt64(bytes.count))   // hashes past where c1 will be
        let c1 = Checkpoint(compressedOffset: 1 << 20, uncompressedOffset: 3 << 20, bits: 3)
        let c2 = Checkpoint(compressedOffset: 9 << 20, uncompressedOffset: 20 << 20)
        hasher.advance(checkpoints: [c0, c1, c2], consumed: UInt64(bytes.count))
        let spans = try bytes.withUnsafeBytes { b in
            try hasher.finish(size: UInt64(bytes.count), blob: BlobFile(bytes: b, at: 0))
        }
        let mib: UInt64 = 1 << 20
        let expected: [Range<UInt64>] = [0..<mib, (mib - 1)..<(9 * mib), (9 * mib)..<UInt64(bytes.count)]
        #expect(spans.map(\.range) == expected)
        for span in spans {
            #expect(span.digest == SHA256Hasher.hash(Array(bytes[Int(span.range.lowerBound)..<Int(span.range.upperBound)])))
        }
    }

    /// An index made without its blob (no span digests) opens, but serves no data unverified.
    @Test(arguments: [LayerCompression.none, .gzip])
    func anIndexWithoutSpanDigestsServesNoData(_ compression: LayerCompression) throws {
        let layer = try Layer(compression)
        var w = LayerIndexWriter()
        w.append(IndexEntryInput(path: Array("first.bin".utf8), kind: .regular, size: 10, dataOffset: 512))
        let bytes = w.serialize(compression: compression, blobSize: layer.blob.size, uncompressedSize: layer.index.uncompressedSize,
                                digest: layer.index.file.bytes.bytes(0, IndexFormat.Header.digest),
                                checkpoints: [Checkpoint(compressedOffset: compression == .none ? 0 : 10, uncompressedOffset: 0)])
        try FileIO.writeAtomically(layer.temp.child("bare"), bytes)
        let bare = try LayerIndex(path: layer.temp.child("bare"))
        #expect(bare.spanCount == 0)
        let data = try LayerData(index: bare, blob: layer.blob, number: 0, cache: SpanCache(capacity: 16 << 20, readAhead: 0),
                                 copyPath: layer.temp.child("copy"))
        #expect(throws: IndexError.self) { try data.read(offset: 512, count: 10) { _ in Issue.record("served unverified") } }
    }
}
