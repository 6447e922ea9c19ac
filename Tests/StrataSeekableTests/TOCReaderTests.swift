import Testing
import StrataHash
import StrataTar
import StrataTestSupport
@testable import StrataSeekable

/// Issue 12: the eStargz and zstd:chunked TOC readers, on blobs made by `SeekableFixture`.
@Suite struct TOCReaderTests {
    static let items: [TarItem] = [
        Items.dir("usr"),
        Items.file(Array("usr/big".utf8), (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }),
        Items.file("usr/small", "hi\n", mode: 0o755, uid: 3, gid: 4, xattrs: ["user.a": [1, 2]]),
        Items.symlink("usr/link", to: "small"),
        Items.hardlink("usr/hard", to: "usr/small"),
        Items.file("empty"),
    ]

    /// Reads through a counting closure, as a registry fetch would.
    static func read(_ blob: SeekableBlob, annotations: [String: String]? = nil) throws -> (toc: TableOfContents, dataEnd: UInt64, reads: [Range<UInt64>])? {
        var reads: [Range<UInt64>] = []
        let bytes = blob.blob
        guard let (toc, end) = try TableOfContents.read(annotations: annotations ?? blob.annotations, blobSize: UInt64(bytes.count), read: { r in
            reads.append(r)
            return Array(bytes[Int(r.lowerBound)..<Int(r.upperBound)])
        }) else { return nil }
        return (toc, end, reads)
    }

    @Test func estargzTOCIsReadWithTwoSmallReads() throws {
        let blob = try SeekableFixture.estargz(Self.items, chunkSize: 64 << 10)
        let (toc, dataEnd, reads) = try #require(try Self.read(blob))
        #expect(toc.format == .estargz && reads.count == 2 && reads[0].count == 51)
        #expect(reads.allSatisfy { $0.count < 4096 })
        let names = toc.entries.map { String(decoding: $0.path, as: UTF8.self) }
        #expect(names == ["usr", "usr/big", "usr/small", "usr/link", "usr/hard", "empty", "stargz.index.json"])
        let big = toc.entries[1]
        #expect(big.size == 200_000 && big.chunks.count == 4 && big.chunks.map(\.fileOffset) == [0, 65536, 131072, 196608])
        #expect(big.chunks.last?.size == 200_000 - 196_608)
        for (a, b) in zip(big.chunks, big.chunks.dropFirst()) { #expect(a.compressedEnd == b.compressedStart) }
        let small = toc.entries[2]
        #expect(small.mode == 0o755 && small.uid == 3 && small.gid == 4 && small.xattrs.map(\.value) == [[1, 2]])
        #expect(small.chunks.count == 1 && small.chunks[0].digest == SHA256Hasher.hash(Array("hi\n".utf8)))
        #expect(small.chunks[0].compressedEnd <= dataEnd)
        #expect(toc.entries[3].kind == .symlink && toc.entries[3].linkTarget == Array("small".utf8))
        #expect(toc.entries[4].kind == .hardlink && toc.entries[5].chunks.isEmpty)
        // The TOC's own entry: its bytes follow its tar header in the TOC member.
        let own = toc.entries[6]
        #expect(own.chunks.count == 1 && own.chunks[0].skip == 512 && own.chunks[0].compressedEnd == dataEnd)
    }

    @Test(arguments: [ZstdChunked.Dialect.legacy, .current])
    func zstdChunkedTOCIsReadFromItsAnnotatedPosition(_ dialect: ZstdChunked.Dialect) throws {
        let blob = try SeekableFixture.zstdChunked(Self.items, chunkSize: 64 << 10, dialect: dialect)
        let (toc, _, reads) = try #require(try Self.read(blob))
        #expect(toc.format == .zstdChunked && reads.count == 1)
        let names = toc.entries.map { String(decoding: $0.path, as: UTF8.self) }
        #expect(names == ["usr", "usr/big", "usr/small", "usr/link", "usr/hard", "empty"])
        #expect(toc.entries[1].chunks.count == 4 && toc.entries[2].chunks.count == 1)
        #expect(toc.entries[2].chunks[0].digest == SHA256Hasher.hash(Array("hi\n".utf8)))
    }

    @Test func zstdChunkedWithoutPositionReadsTheFooter() throws {
        let blob = try SeekableFixture.zstdChunked(Self.items, annotatePosition: false)
        let (toc, _, reads) = try #require(try Self.read(blob))
        #expect(reads.count == 2 && reads[0].upperBound == UInt64(blob.blob.count) && toc.entries.count == 6)
    }

    /// Without the digest annotation a TOC is not used at all: the footer alone is not trusted.
    @Test func noAnnotationNoTOC() throws {
        let blob = try SeekableFixture.estargz(Self.items)
        #expect(try Self.read(blob, annotations: [:]) == nil)
        #expect(TableOfContents.format(annotations: [:]) == nil)
    }

    @Test func estargzTOCDigestMismatchIsRefused() throws {
        let blob = try SeekableFixture.estargz(Self.items)
        var annotations = blob.annotations
        annotations[EStargz.tocDigestAnnotation] = "sha256:" + String(repeating: "0", count: 64)
        let error = try #require(throws: TOCError.self) { try Self.read(blob, annotations: annotations) }
        #expect(error.message.contains("TOC digest mismatch"))
    }

    @Test func zstdChunkedTOCDigestMismatchIsRefused() throws {
        let blob = try SeekableFixture.zstdChunked(Self.items)
        var annotations = blob.annotations
        annotations[ZstdChunked.Dialect.legacy.manifestChecksumKey] = "sha256:" + String(repeating: "1", count: 64)
        let error = try #require(throws: TOCError.self) { try Self.read(blob, annotations: annotations) }
        #expect(error.message.contains("TOC digest mismatch"))
    }

    @Test func zstdChunkedPositionOutsideTheBlobIsRefused() throws {
        let blob = try SeekableFixture.zstdChunked(Self.items)
        var annotations = blob.annotations
        annotations[ZstdChunked.Dialect.legacy.manifestPositionKey] = "\(blob.blob.count - 4):100:100:1"
        let error = try #require(throws: TOCError.self) { try Self.read(blob, annotations: annotations) }
        #expect(error.message.contains("outside the blob"))
    }

    /// zstd:chunked holes cannot be indexed from the TOC: unsupported (not a lie), so the layer
    /// is indexed from its stream.
    @Test func zstdChunkedHolesAreUnsupported() throws {
        let blob = try SeekableFixture.zstdChunked(Self.items) { toc in toc.entries[1].chunkType = ZstdChunkedTOCEntry.chunkTypeZeros }
        let error = try #require(throws: TOCError.self) { try Self.read(blob) }
        #expect(error.unsupported && error.message.contains("holes"))
    }
}
