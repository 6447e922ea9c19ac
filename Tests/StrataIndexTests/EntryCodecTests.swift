import Testing
import Glibc
import StrataCodec
import StrataSystem
import StrataTestSupport
@testable import StrataIndex

/// The entry records of index format 4 (`EntryCodec`): every field of every kind of entry reads
/// back as written, in order and at random, across restarts; the streamed writer gives the
/// bytes the in-memory one does.
@Suite struct EntryCodecTests {
    /// A layer's worth of entries exercising what the codec shares or predicts: entries of one
    /// directory together, repeated attributes, data offsets that follow and ones that do not.
    static func entries(_ count: Int) -> [IndexEntryInput] {
        let name255 = String(repeating: "n", count: 255)
        var deep = (0..<120).map { "level\($0)x" }.joined(separator: "/")   // 1319 bytes of path
        while deep.utf8.count < 3800 { deep += "/d" }
        var out: [IndexEntryInput] = []
        var offset: UInt64 = 512
        for i in 0..<count {
            let dir = i % 7 == 6 ? deep : "pkg\(i / 50)/lib"
            var e = IndexEntryInput(path: Array("\(dir)/f\(i)".utf8), kind: .regular, mode: 0o644, uid: 1000, gid: 1000,
                                    size: UInt64(i * 37 % 5000), dataOffset: offset, storedSize: UInt64(i * 37 % 5000),
                                    mtimeSeconds: 1_700_000_000 + Int64(i % 3), mtimeNanoseconds: UInt32(i % 2) * 5)
            switch i % 13 {
            case 0: e.kind = .directory; e.path = Array("pkg\(i / 50)".utf8); e.size = 0; e.storedSize = 0; e.mode = 0o755
            case 1: e.kind = .hardlink; e.linkTarget = Array("pkg\(i / 50)/lib/f\(i - 2)".utf8); e.size = 0; e.storedSize = 0
            case 2: e.kind = .symlink; e.linkTarget = Array("../\(name255)".utf8); e.size = 258; e.storedSize = 0; e.mode = 0o777
            case 3: e.kind = .whiteout; e.path = Array("pkg\(i / 50)/.gone\(i)".utf8); e.size = 0; e.storedSize = 0
            case 4: e.kind = .opaque; e.path = Array("pkg\(i / 50)/lib".utf8); e.size = 0; e.storedSize = 0
            case 5: e.kind = .characterDevice; e.devMajor = 1; e.devMinor = UInt32(i); e.size = 0; e.storedSize = 0
            case 6: e.xattrs = [(Array("user.k\(i)".utf8), Array("v\(i)".utf8)), (Array("security.capability".utf8), [1, 0, 2])]
            case 7: e.sparse = [(offset: 0, length: 10), (offset: 1 << 20, length: 20)]; e.size = 2 << 20; e.storedSize = 30
            case 8: e.path = Array("\(dir)/\(name255)".utf8); e.mtimeSeconds = -5; e.uid = 70_000; e.gid = 4_000_000_000
            case 9: e.dataOffset = offset + 4096   // an entry with extension headers before it
            case 10: e.kind = .fifo; e.size = 0; e.storedSize = 0; e.mode = 0o4755
            default: break
            }
            if i == 0 { e = IndexEntryInput(path: [], kind: .directory, mode: 0o700, dataOffset: offset) }
            offset = e.dataOffset + (e.storedSize + 511) / 512 * 512 + 512
            out.append(e)
        }
        return out
    }

    static func check(_ e: IndexEntry, _ x: IndexEntryInput, xattrFirst: UInt32, sparseFirst: UInt32) {
        #expect(e.path == x.path && Array(e.linkTarget) == x.linkTarget && e.kind == x.kind, "\(String(decoding: x.path, as: UTF8.self))")
        #expect(e.mode == (x.kind == .symlink ? 0o777 : x.mode) && e.uid == x.uid && e.gid == x.gid)
        #expect(e.size == x.size && e.dataOffset == x.dataOffset && e.storedSize == x.storedSize)
        #expect(e.mtimeSeconds == x.mtimeSeconds && e.mtimeNanoseconds == x.mtimeNanoseconds)
        #expect(e.devMajor == x.devMajor && e.devMinor == x.devMinor && e.isSparse == (x.sparse != nil))
        #expect(e.xattrCount == UInt32(x.xattrs.count) && e.sparseCount == UInt32(x.sparse?.count ?? 0))
        if !x.xattrs.isEmpty { #expect(e.xattrFirst == xattrFirst) }
        if x.sparse != nil { #expect(e.sparseFirst == sparseFirst) }
    }

    @Test func everyFieldOfEveryKindRoundTrips() throws {
        let inputs = Self.entries(3000)
        var w = LayerIndexWriter()
        for e in inputs { w.append(e) }
        let dir = try TempDirectory()
        let path = dir.child("index")
        try FileIO.writeAtomically(path, w.serialize(compression: .gzip, blobSize: 1, uncompressedSize: 1 << 40,
                                                     digest: [UInt8](repeating: 1, count: 32), checkpoints: []))
        let index = try LayerIndex(path: path)
        #expect(index.entryCount == inputs.count)
        var cursor = index.cursor(from: 0)
        var xattrFirst: UInt32 = 0, sparseFirst: UInt32 = 0
        for (i, x) in inputs.enumerated() {
            let e = cursor.next()
            Self.check(e, x, xattrFirst: xattrFirst, sparseFirst: sparseFirst)
            if !x.xattrs.isEmpty {
                #expect(Array(index.xattr(Int(e.xattrFirst) + 1).value) == [1, 0, 2])
                #expect(Array(index.xattr(Int(e.xattrFirst)).name) == Array("user.k\(i)".utf8))
            }
            if x.sparse != nil { #expect(index.sparseSegment(Int(e.sparseFirst) + 1) == (1 << 20, 20)) }
            xattrFirst += UInt32(x.xattrs.count)
            sparseFirst += UInt32(x.sparse?.count ?? 0)
        }
        #expect(!cursor.malformed)
        // At random: each from its restart, the same entry.
        for i in [0, 1, 31, 32, 33, 63, 64, 1000, 2999] {
            let e = index.entry(i)
            #expect(e.path == inputs[i].path && e.dataOffset == inputs[i].dataOffset && e.kind == inputs[i].kind, "entry \(i)")
        }
        // Entries of one directory share its number.
        #expect(index.entry(14).directory == index.entry(15).directory && index.entry(14).directory != index.entry(20).directory)
        #expect(index.directoryCount < inputs.count / 10)
    }

    /// The writer streaming its records into a file writes what the in-memory writer makes,
    /// also when the records outgrow its buffer (a megabyte) several times.
    @Test func streamedIndexIsTheSameBytes() throws {
        let inputs = Self.entries(150_000)
        var memory = LayerIndexWriter()
        for e in inputs { memory.append(e) }
        let checkpoints = [Checkpoint(compressedOffset: 0, uncompressedOffset: 0),
                           Checkpoint(compressedOffset: 9, uncompressedOffset: 1 << 20, bits: 3, window: [UInt8](repeating: 7, count: 900))]
        let expected = memory.serialize(compression: .gzip, blobSize: 10, uncompressedSize: 1 << 40,
                                        digest: [UInt8](repeating: 2, count: 32), checkpoints: checkpoints)
        let dir = try TempDirectory()
        let fd = try FileDescriptor.open(dir.child("streamed"), O_RDWR | O_CREAT | O_TRUNC, mode: 0o644)
        defer { fd.close() }
        let sink = CacheFileSink(file: fd)
        var streamed = LayerIndexWriter(streamingTo: sink)
        for e in inputs { try streamed.appendStreaming(e) }
        try streamed.finish(into: sink, compression: .gzip, blobSize: 10, uncompressedSize: 1 << 40,
                            digest: [UInt8](repeating: 2, count: 32), checkpoints: checkpoints)
        let got = try FileIO.readAll(dir.child("streamed"))
        #expect(got.count == expected.count && got == expected)
        #expect(try LayerIndex(path: dir.child("streamed")).entryCount == inputs.count)
    }

    /// The checksum of pieces is the checksum of the whole.
    @Test func checksumStreamMatchesTheWholeFileChecksum() {
        let bytes = (0..<100_003).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        bytes.withUnsafeBytes { b in
            var s = ChecksumStream(count: b.count)
            s.feed(UnsafeRawBufferPointer(rebasing: b[0..<8]))
            s.feed(UnsafeRawBufferPointer(rebasing: b[8..<65536]))
            s.feed(UnsafeRawBufferPointer(rebasing: b[65536...]))
            #expect(s.finalize() == fileChecksum(b, skipping: 0..<0))
        }
    }

    /// A record damaged so that it points outside what it may (a directory that does not
    /// exist, a name running past the records) makes the index refused, not read.
    @Test func malformedRecordsAreRefused() throws {
        var w = LayerIndexWriter()
        for e in Self.entries(100) { w.append(e) }
        var bytes = w.serialize(compression: .none, blobSize: 0, uncompressedSize: 1 << 40, digest: [UInt8](repeating: 3, count: 32),
                                checkpoints: [])
        let entriesOffset = bytes.withUnsafeBytes { IndexFormat.entries.offset(in: $0) }
        let dir = try TempDirectory()
        try FileIO.writeAtomically(dir.child("good"), bytes)
        // Entry 1's directory difference (after its one-byte tag), made one that points nowhere.
        let good = try LayerIndex(path: dir.child("good"))
        var cursor = good.cursor(from: 0)
        _ = cursor.next()
        bytes[entriesOffset + cursor.streamPosition + 1] = 0x7E
        // Re-seal the sections' checksums, so that only the record check can catch it.
        bytes.withUnsafeMutableBytes { b in
            let s = IndexFormat.entries.range(in: UnsafeRawBufferPointer(b))
            b.put(IndexFormat.checksum(UnsafeRawBufferPointer(rebasing: b[s])), 0, IndexFormat.Header.entriesChecksum)
            b.put(IndexFormat.file.checksumOfHeader(UnsafeRawBufferPointer(b)), 0, IndexFormat.Header.checksum)
        }
        try FileIO.writeAtomically(dir.child("bad"), bytes)
        #expect(throws: IndexError.self) { try LayerIndex(path: dir.child("bad")) }
    }
}
