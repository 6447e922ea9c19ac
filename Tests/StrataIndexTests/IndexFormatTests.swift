import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSystem
import StrataTestSupport
@testable import StrataIndex

/// A fixed index exercising every record kind: entries of each kind, xattrs, sparse maps,
/// blob checkpoints with windows, and copy frames that replace the checkpoints they cover.
func fixedIndex() -> [UInt8] {
    var w = LayerIndexWriter()
    let kinds: [IndexEntryKind] = [.directory, .regular, .hardlink, .symlink, .characterDevice, .blockDevice, .fifo, .whiteout, .opaque]
    for (i, kind) in kinds.enumerated() {
        let n = UInt32(i)
        w.append(IndexEntryInput(
            path: Array("dir/entry-\(i)".utf8), linkTarget: kind == .symlink || kind == .hardlink ? Array("dir/entry-1".utf8) : [],
            kind: kind, mode: 0o640 + n, uid: 1000 + n, gid: 2000 + n, size: 4096 * UInt64(i + 1), dataOffset: 512 * UInt64(i + 3),
            storedSize: i == 1 ? 1024 : 0, mtimeSeconds: 1_700_000_000 + Int64(i), mtimeNanoseconds: 123 + n,
            devMajor: 8 + n, devMinor: 16 + n,
            xattrs: i % 2 == 0 ? [(Array("user.k\(i)".utf8), Array("value-\(i)".utf8)), (Array("security.x".utf8), [])] : [],
            sparse: i == 1 ? [(offset: 0, length: 512), (offset: 2048, length: 512)] : nil))
    }
    let checkpoints = (0..<6).map { i in
        Checkpoint(compressedOffset: UInt64(i) * 1000 + 10, uncompressedOffset: UInt64(i) << 20, bits: UInt8(i),
                   window: i == 0 ? [] : (0..<(i * 700)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) })
    }
    let copy = RecodedCopy(frames: [
        RecodedCopy.Frame(uncompressedOffset: 2 << 20, uncompressedLength: 1 << 20, copyOffset: 0, compressedSize: 300),
        RecodedCopy.Frame(uncompressedOffset: 3 << 20, uncompressedLength: 1 << 20, copyOffset: 300, compressedSize: 200),
    ])
    let spans = [0..<2000, 1999..<4000, 4000..<6000].enumerated().map { i, r in
        SpanDigest(range: UInt64(r.lowerBound)..<UInt64(r.upperBound), digest: (0..<32).map { UInt8(truncatingIfNeeded: $0 * 3 + i) })
    }
    return w.serialize(compression: .zstd, blobSize: 6000, uncompressedSize: 6 << 20,
                       digest: (0..<32).map { UInt8($0 * 7) }, checkpoints: checkpoints, copy: copy, spans: spans,
                       checkpointSpacing: 1 << 20)
}

@Suite struct IndexFormatTests {
    /// The bytes of a fixed index, recorded before the format was described by named fields:
    /// a change that moves a field changes the format and must change the version. (The bytes
    /// changed without a new version once: windows deflated at level 2 instead of 6, which
    /// every reader inflates alike. Version 7, sparse windows, changed only the version field
    /// here: the fixture's windows are given, not made by a decoder.)
    @Test func fixedIndexKeepsItsBytes() {
        let bytes = fixedIndex()
        #expect(SHA256Hasher.hex(of: bytes) == "160b062e673739d39d1039eb2717bd317ea14897057d941ea2682830c7d2ffc5")
    }
}


@Suite struct IndexFieldTests {
    @Test func fieldsTileEachRecord() {
        typealias F = IndexFormat
        #expect(FormatField.tile(F.Header.all, size: F.Header.size))
        #expect(FormatField.tile(F.Xattr.all, size: F.Xattr.size))
        #expect(FormatField.tile(F.Sparse.all, size: F.Sparse.size))
        #expect(FormatField.tile(F.Checkpoint.all, size: F.Checkpoint.size))
        #expect(FormatField.tile(F.Span.all, size: F.Span.size))
        for s in F.file.sections { #expect(F.Header.all.contains(s.start) && F.Header.all.contains(s.count), "\(s.name)") }
    }

    /// Every field written with its own value reads back as that value by name, so a writer
    /// and a reader cannot disagree on a field's place.
    @Test func everyFieldReadsBackByName() throws {
        typealias H = IndexFormat.Header
        typealias C = IndexFormat.Checkpoint
        var w = LayerIndexWriter()
        // A first entry, so the second's runs of xattrs and sparse segments do not start at 0.
        w.append(IndexEntryInput(path: Array("a".utf8), kind: .regular, xattrs: [(Array("user.a".utf8), [1])],
                                 sparse: [(offset: 1, length: 2)]))
        w.append(IndexEntryInput(path: Array("dir/file".utf8), linkTarget: Array("target".utf8), kind: .hardlink,
                                 mode: 0o4751, uid: 11, gid: 12, size: 13, dataOffset: 14, storedSize: 15,
                                 mtimeSeconds: -16, mtimeNanoseconds: 17, devMajor: 18, devMinor: 19,
                                 xattrs: [(Array("user.x".utf8), Array("vx".utf8)), (Array("user.y".utf8), Array("vyy".utf8))],
                                 sparse: [(offset: 20, length: 21), (offset: 22, length: 23), (offset: 24, length: 25)]))
        let window = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let bytes = w.serialize(compression: .zstd, blobSize: 41, uncompressedSize: 3 << 20, digest: (0..<32).map { UInt8(100 + $0) },
                                checkpoints: [Checkpoint(compressedOffset: 0, uncompressedOffset: 0),
                                              Checkpoint(compressedOffset: 31, uncompressedOffset: 32, bits: 5, window: window)],
                                copy: RecodedCopy(frames: [RecodedCopy.Frame(uncompressedOffset: 1 << 20, uncompressedLength: 1 << 20,
                                                                             copyOffset: 0, compressedSize: 77)]),
                                spans: [SpanDigest(range: 0..<31, digest: Array(repeating: 0xA1, count: 32)),
                                        SpanDigest(range: 30..<41, digest: (0..<32).map { UInt8($0) })])
        let dir = try TempDirectory()
        let path = dir.path + "/index"
        try FileIO.writeAtomically(path, bytes)
        let index = try LayerIndex(path: path)

        #expect(index.compression == .zstd && index.blobSize == 41 && index.uncompressedSize == 3 << 20)
        #expect(index.entryCount == 2 && index.checkpointCount == 3 && index.copySize == 77)
        #expect(index.digestHex == (0..<32).map { String(100 + $0, radix: 16) }.joined())
        let e = index.entry(1)
        #expect(String(decoding: e.path, as: UTF8.self) == "dir/file" && String(decoding: e.linkTarget, as: UTF8.self) == "target")
        #expect(e.kind == .hardlink && e.isSparse && e.mode == 0o4751 && e.uid == 11 && e.gid == 12)
        #expect(e.size == 13 && e.dataOffset == 14 && e.storedSize == 15 && e.mtimeSeconds == -16 && e.mtimeNanoseconds == 17)
        #expect(e.devMajor == 18 && e.devMinor == 19)
        #expect(e.xattrFirst == 1 && e.xattrCount == 2 && e.sparseFirst == 1 && e.sparseCount == 3)
        #expect(String(decoding: index.xattr(2).name, as: UTF8.self) == "user.y" && Array(index.xattr(2).value) == Array("vyy".utf8))
        #expect(index.sparseSegment(3) == (24, 25))
        #expect(index.entry(0).isSparse && index.kind(1) == .hardlink)
        // Checkpoints in stream order: the start, one with its window, the copy frame.
        let frame = try #require(index.copyFrame(2))
        #expect(frame == (0, 77) && index.copyFrame(1) == nil && index.checkpointOffsets(2) == (0, 1 << 20))
        #expect(index.spanCount == 2 && index.spanRange(0) == 0..<31 && index.spanRange(1) == 30..<41)
        #expect(index.spanDigest(0) == Array(repeating: 0xA1, count: 32) && index.spanDigest(1) == (0..<32).map { UInt8($0) })
        #expect(index.span(forCheckpoint: 0) == 0 && index.span(forCheckpoint: 1) == 1 && index.spanIndex(containing: 30) == 1)
        let c = try index.checkpoint(1)
        #expect(c.compressedOffset == 31 && c.uncompressedOffset == 32 && c.bits == 5 && c.window == window)
        // And by name in the raw bytes: what the reader's accessors do not show.
        bytes.withUnsafeBytes { b in
            #expect(b.bytes(0, H.magic) == Array("STRATAIX".utf8) && b.u32(0, H.version) == IndexFormat.version)
            #expect(b.u64(0, H.totalLength) == UInt64(bytes.count) && b.u32(0, H.compression) == 2)
            #expect(b.u32(0, H.entryCount) == 2 && b.u64(0, H.entriesLength) == UInt64(IndexFormat.entries.range(in: b).count))
            let cp = IndexFormat.checkpoints.offset(in: b) + C.size
            #expect(b.u8(cp, C.source) == IndexFormat.sourceBlob && b.u32(cp, C.windowLength) == 300)
            #expect(b.u8(cp + C.size, C.source) == IndexFormat.sourceCopy)
            #expect(b.bytes(0, H.reserved).allSatisfy { $0 == 0 } && b.u32(0, H.spanKind) == IndexFormat.spanKindCompressed && b.u32(0, H.spanCount) == 2)
        }
    }
}
