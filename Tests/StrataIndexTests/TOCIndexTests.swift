import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSeekable
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataIndex

/// Issue 12: a layer index built from a seekable layer's table of contents (`TOCIndexBuilder`):
/// one checkpoint per chunk in a virtual stream, the chunks' content digests verified when a
/// chunk is decoded, and a TOC that lies refused.
@Suite struct TOCIndexTests {
    /// A layer cut like eStargz (a gzip member per chunk) or zstd:chunked (a frame per chunk):
    /// the tar stream split at every chunk start, each piece compressed on its own, and the TOC
    /// that describes it, made here from the tar.
    struct ChunkedLayer {
        let temp: TempDirectory
        let blobBytes: [UInt8]
        let blob: LayerBlob
        var toc: TableOfContents
        let contents: [String: [UInt8]]
        let plain: LayerIndex

        init(_ format: TableOfContents.Format, chunkSize: Int = 64 << 10) throws {
            temp = try TempDirectory()
            let big = content(300 << 10, seed: 7), small = Array("hello\n".utf8), mid = content(70 << 10, seed: 11)
            let items: [TarItem] = [
                Items.dir("etc", mode: 0o755),
                Items.file(Array("etc/small.txt".utf8), small, mode: 0o600, uid: 12, gid: 34, xattrs: ["user.k": Array("v".utf8)]),
                Items.file(Array("big.bin".utf8), big),
                Items.symlink("link", to: "big.bin"),
                Items.hardlink("etc/again.txt", to: "etc/small.txt"),
                Items.file("empty"),
                Items.file(Array("mid.bin".utf8), mid, mode: 0o755),
                Items.fifo("pipe"),
            ]
            contents = ["etc/small.txt": small, "big.bin": big, "mid.bin": mid, "empty": []]
            let tar = try TarWriter.archive(items)
            // The entries as the tar reader sees them, with their data offsets.
            let reader = TarReader(source: MemoryTarSource(tar))
            var tarEntries: [TarEntry] = []
            while let e = try reader.next() { tarEntries.append(e) }
            var cuts: [Int] = [0]
            for e in tarEntries where e.type == .regular && e.size > 0 {
                var at = 0
                while at < Int(e.size) { cuts.append(Int(e.dataOffset) + at); at += chunkSize }
            }
            var pieces: [(start: Int, end: Int)] = []
            var blobBytes: [UInt8] = []
            for (k, cut) in cuts.enumerated() {
                let end = k + 1 < cuts.count ? cuts[k + 1] : tar.count
                let piece = Array(tar[cut..<end])
                let start = blobBytes.count
                blobBytes += format == .estargz ? Gzip.compress(piece) : Zstd.compress(piece)
                pieces.append((start, blobBytes.count))
            }
            self.blobBytes = blobBytes
            var piece = 1
            var entries: [TableOfContents.Entry] = []
            for e in tarEntries {
                let kind: TableOfContents.Kind = switch e.type {
                case .regular: .regular
                case .directory: .directory
                case .symlink: .symlink
                case .hardlink: .hardlink
                case .characterDevice: .characterDevice
                case .blockDevice: .blockDevice
                case .fifo: .fifo
                }
                var entry = TableOfContents.Entry(path: e.path, kind: kind, linkTarget: e.linkTarget, mode: e.mode, uid: e.uid,
                                                  gid: e.gid, size: e.type == .regular ? e.size : 0, mtimeSeconds: e.mtimeSeconds,
                                                  mtimeNanoseconds: e.mtimeNanoseconds,
                                                  xattrs: e.xattrs.map { (Array($0.name.utf8), $0.value) })
                if e.type == .regular && e.size > 0 {
                    var at = 0
                    while at < Int(e.size) {
                        let n = min(chunkSize, Int(e.size) - at)
                        let from = Int(e.dataOffset) + at
                        entry.chunks.append(TableOfContents.Chunk(
                            fileOffset: UInt64(at), size: UInt64(n), compressedStart: UInt64(pieces[piece].start),
                            compressedEnd: UInt64(pieces[piece].end), digest: SHA256Hasher.hash(Array(tar[from..<(from + n)]))))
                        piece += 1
                        at += n
                    }
                }
                entries.append(entry)
            }
            toc = TableOfContents(format: format, entries: entries)
            let path = temp.child("blob")
            try FileIO.writeAtomically(path, blobBytes)
            blob = LayerBlob(path: path, digestHex: SHA256Hasher.hex(of: blobBytes), size: UInt64(blobBytes.count),
                             compression: format == .estargz ? .gzip : .zstd)
            // The same layer indexed the ordinary way, from its stream: what the TOC's index must equal.
            try FileIO.writeAtomically(temp.child("plain"), try IndexBuilder.build(blob))
            plain = try LayerIndex(path: temp.child("plain"))
        }

        func index(_ toc: TableOfContents? = nil) throws -> LayerIndex {
            let bytes = try TOCIndexBuilder.build(toc ?? self.toc, blob: blob, digest: SHA256Hasher.hash(blobBytes))
            let path = temp.child("toc-\(UInt64.random(in: 0...UInt64.max))")
            try FileIO.writeAtomically(path, bytes)
            return try LayerIndex(path: path)
        }

        func data(_ index: LayerIndex, blob: LayerBlob? = nil) throws -> LayerData {
            try LayerData(index: index, blob: blob ?? self.blob, number: 0, cache: SpanCache(capacity: 64 << 20, readAhead: 0),
                          copyPath: temp.child("copy"))
        }

        func read(_ data: LayerData, _ index: LayerIndex, _ name: String) throws -> [UInt8] {
            let i = try #require((0..<index.entryCount).first { String(decoding: index.entry($0).path, as: UTF8.self) == name })
            let e = index.entry(i)
            var out = [UInt8](repeating: 0, count: Int(e.size))
            try out.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
            return out
        }
    }

    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func tocIndexServesTheSameTreeAsTheStream(_ format: TableOfContents.Format) throws {
        let layer = try ChunkedLayer(format)
        let index = try layer.index()
        #expect(index.contentSpans && !layer.plain.contentSpans)
        // One checkpoint and one content span per chunk: 5 for big.bin, 2 for mid.bin, 1 for small.txt.
        #expect(index.checkpointCount == 8 && index.spanCount == 8)
        #expect(index.uncompressedSize == UInt64((300 << 10) + (70 << 10) + 6))
        #expect(index.entryCount == layer.plain.entryCount)
        for i in 0..<index.entryCount {
            let (a, b) = (index.entry(i), layer.plain.entry(i))
            #expect(a.path == b.path && a.kind == b.kind && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid && a.size == b.size
                    && a.mtimeSeconds == b.mtimeSeconds && a.xattrCount == b.xattrCount
                    && Array(a.linkTarget) == Array(b.linkTarget), "entry \(i)")
        }
        let data = try layer.data(index)
        for (name, bytes) in layer.contents { #expect(try layer.read(data, index, name) == bytes, "\(name)") }
    }

    /// Reading a small file decodes its chunk only, not the layer.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func aReadDecodesOnlyItsChunk(_ format: TableOfContents.Format) throws {
        let layer = try ChunkedLayer(format)
        let index = try layer.index()
        let data = try layer.data(index)
        #expect(try layer.read(data, index, "etc/small.txt") == Array("hello\n".utf8))
        #expect(data.cache.decodedBytes == 6)
        #expect(try layer.read(data, index, "mid.bin") == layer.contents["mid.bin"])
        #expect(data.cache.decodedBytes == 6 + (70 << 10))
    }

    /// A chunk whose bytes do not hash to the TOC's digest is never served: the read fails.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func aChunkDigestMismatchFailsTheRead(_ format: TableOfContents.Format) throws {
        var layer = try ChunkedLayer(format)
        let e = try #require(layer.toc.entries.firstIndex { $0.path == Array("mid.bin".utf8) })
        layer.toc.entries[e].chunks[1].digest[0] ^= 1
        let index = try layer.index()
        let data = try layer.data(index)
        #expect(throws: SpanMismatch.self) { try layer.read(data, index, "mid.bin") }
        // The other files still read.
        #expect(try layer.read(data, index, "big.bin") == layer.contents["big.bin"])
    }

    /// A blob whose chunk bytes were changed after the TOC was made fails that chunk.
    @Test func aChangedBlobFailsItsChunk() throws {
        let layer = try ChunkedLayer(.zstdChunked)
        let index = try layer.index()
        let e = try #require(layer.toc.entries.first { $0.path == Array("mid.bin".utf8) })
        var changed = layer.blobBytes
        changed[Int(e.chunks[0].compressedStart) + 8] ^= 0x55
        let path = layer.temp.child("changed")
        try FileIO.writeAtomically(path, changed)
        var blob = layer.blob
        blob.path = path
        let data = try layer.data(index, blob: blob)
        #expect(throws: SpanMismatch.self) { try layer.read(data, index, "mid.bin") }
    }

    @Test func chunksPastTheEndAreRefused() throws {
        var layer = try ChunkedLayer(.estargz)
        let e = try #require(layer.toc.entries.firstIndex { $0.path == Array("mid.bin".utf8) })
        layer.toc.entries[e].chunks[1].compressedEnd = UInt64(layer.blobBytes.count) + 10
        let error = try #require(throws: IndexError.self) { try layer.index(layer.toc) }
        #expect(error.message.contains("layer sha256:\(layer.blob.digestHex)") && error.message.contains("mid.bin")
                && error.message.contains("outside"))
        #expect(!error.message.contains("\n"))
    }

    @Test func overlappingChunksAreRefused() throws {
        var layer = try ChunkedLayer(.zstdChunked)
        let e = try #require(layer.toc.entries.firstIndex { $0.path == Array("mid.bin".utf8) })
        layer.toc.entries[e].chunks[1].compressedStart = layer.toc.entries[e].chunks[0].compressedStart
        let error = try #require(throws: IndexError.self) { try layer.index(layer.toc) }
        #expect(error.message.contains("layer sha256:\(layer.blob.digestHex)") && error.message.contains("overlaps"))
    }

    @Test func chunksThatDoNotTileTheirFileAreRefused() throws {
        var layer = try ChunkedLayer(.estargz)
        let e = try #require(layer.toc.entries.firstIndex { $0.path == Array("big.bin".utf8) })
        layer.toc.entries[e].chunks.remove(at: 2)
        let error = try #require(throws: IndexError.self) { try layer.index(layer.toc) }
        #expect(error.message.contains("big.bin") && error.message.contains("does not follow"))
        var short = try ChunkedLayer(.estargz)
        short.toc.entries[e].chunks.removeLast()
        let error2 = try #require(throws: IndexError.self) { try short.index(short.toc) }
        #expect(error2.message.contains("big.bin") && error2.message.contains("chunks hold"))
    }

    /// A hostile index file (spans out of order) is refused when opened, like other malformed ones.
    @Test func contentSpansOutOfOrderAreMalformed() throws {
        let layer = try ChunkedLayer(.zstdChunked)
        var w = LayerIndexWriter()
        w.append(IndexEntryInput(path: Array("a".utf8), kind: .regular, size: 20, dataOffset: 0, storedSize: 20))
        let digest = [UInt8](repeating: 1, count: 32)
        let bytes = w.serialize(compression: .zstd, blobSize: layer.blob.size, uncompressedSize: 20, digest: digest,
                                checkpoints: [Checkpoint(compressedOffset: 50, uncompressedOffset: 0),
                                              Checkpoint(compressedOffset: 10, uncompressedOffset: 10)],
                                spans: [SpanDigest(range: 50..<60, digest: digest), SpanDigest(range: 10..<20, digest: digest)],
                                contentSkips: [0, 0])
        let path = layer.temp.child("bad")
        try FileIO.writeAtomically(path, bytes)
        let error = try #require(throws: IndexError.self) { try LayerIndex(path: path) }
        #expect(error.message.contains("span digest 1 is malformed"))
    }

    /// eStargz's innerOffset: small files sharing one gzip member, each chunk skipping what
    /// precedes it in the member.
    @Test func chunksSharingAMemberReadBack() throws {
        let temp = try TempDirectory()
        let a = content(1000, seed: 1), b = content(2000, seed: 2)
        let tar = try TarWriter.archive([Items.file(Array("a".utf8), a), Items.file(Array("b".utf8), b)])
        let reader = TarReader(source: MemoryTarSource(tar))
        let ea = try #require(try reader.next()), eb = try #require(try reader.next())
        let head = Gzip.compress(Array(tar[0..<Int(ea.dataOffset)])), rest = Gzip.compress(Array(tar[Int(ea.dataOffset)...]))
        let blobBytes = head + rest
        let path = temp.child("blob")
        try FileIO.writeAtomically(path, blobBytes)
        let blob = LayerBlob(path: path, digestHex: SHA256Hasher.hex(of: blobBytes), size: UInt64(blobBytes.count), compression: .gzip)
        let member = UInt64(head.count)..<UInt64(blobBytes.count)
        let toc = TableOfContents(format: .estargz, entries: [
            .init(path: Array("a".utf8), kind: .regular, size: 1000, chunks: [
                .init(fileOffset: 0, size: 1000, compressedStart: member.lowerBound, compressedEnd: member.upperBound, digest: SHA256Hasher.hash(a))]),
            .init(path: Array("b".utf8), kind: .regular, size: 2000, chunks: [
                .init(fileOffset: 0, size: 2000, compressedStart: member.lowerBound, compressedEnd: member.upperBound, digest: SHA256Hasher.hash(b),
                      skip: eb.dataOffset - ea.dataOffset)]),
        ])
        try FileIO.writeAtomically(temp.child("idx"), try TOCIndexBuilder.build(toc, blob: blob, digest: SHA256Hasher.hash(blobBytes)))
        let index = try LayerIndex(path: temp.child("idx"))
        #expect(index.checkpointCount == 2 && index.spanRange(0) == index.spanRange(1))
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 64 << 20, readAhead: 0), copyPath: temp.child("copy"))
        for (i, bytes) in [(0, a), (1, b)] {
            let e = index.entry(i)
            var out = [UInt8](repeating: 0, count: Int(e.size))
            try out.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
            #expect(out == bytes, "entry \(i)")
        }
    }
}
