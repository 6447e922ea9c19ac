#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataIndex
import StrataOCI
import StrataSeekable
import StrataSystem
import StrataTar
import StrataTestSupport

/// Issue 12: eStargz and zstd:chunked layers of a local layout are indexed from their TOC
/// (the stream is not inflated), give the same tree as `umoci unpack`, and a TOC that lies is
/// refused naming the layer (or, for a chunk digest, the read fails with EIO).
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct SeekableLayoutMountTests {
    static let lower: [TarItem] = [
        Items.dir("etc", mode: 0o755), Items.file("etc/hello", "hello", mode: 0o644, uid: 10),
        Items.hardlink("etc/hello-again", to: "etc/hello"), Items.symlink("link", to: "etc/hello"),
        Items.charDevice("null", major: 1, minor: 3), Items.file("gone", "removed above"), Items.fifo("pipe"),
        Items.dir("opaque"), Items.file("opaque/old", "hidden by the opaque marker"),
        Items.file(Array("big".utf8), Items.pseudoRandom(count: 300_000, seed: 7)),
        Items.file("etc/x", "with xattr", xattrs: ["user.note": Array("v".utf8)]),
    ]
    static let upper: [TarItem] = [
        Items.whiteout("gone"), Items.opaque("opaque"), Items.file("opaque/new", "new"),
        Items.file("etc/hello", "hello, replaced", mode: 0o600),
    ]

    static func fixture(_ format: TableOfContents.Format, _ items: [TarItem]) throws -> SeekableBlob {
        format == .estargz ? try SeekableFixture.estargz(items) : try SeekableFixture.zstdChunked(items)
    }

    /// A layout with the two layers in `format` (tag "test") and, for zstd:chunked which umoci
    /// cannot read, a gzip twin of the same streams (tag "ref").
    static func layout(_ temp: TempDirectory, _ format: TableOfContents.Format) throws -> (ImageBuilder, [SeekableBlob]) {
        let builder = try ImageBuilder(layout: temp.child("layout"))
        let blobs = [try fixture(format, lower), try fixture(format, upper)]
        for b in blobs { try builder.addSeekableLayer(b) }
        try builder.write(tag: "test")
        if format == .zstdChunked {
            builder.layers = []
            for b in blobs { try builder.addLayer(tar: b.tar, compression: .gzip) }
            try builder.write(tag: "ref")
        }
        return (builder, blobs)
    }

    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func sameTreeAsUmociAndIndexedFromTheTOC(_ format: TableOfContents.Format) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (builder, blobs) = try Self.layout(temp, format)
        let c = try MountComparison.run(layout: builder.layout, tag: "test", referenceTag: format == .zstdChunked ? "ref" : nil)
        #expect(c.differences.isEmpty, Comment(rawValue: c.report))
        #expect(c.mounted.entry("opaque/new") != nil && c.mounted.entry("opaque/old") == nil && c.mounted.entry("gone") == nil)
        // Indexed from the TOC: content span digests, one checkpoint per chunk; `strata index`
        // then checked the stream against the TOC and recorded its diff_id.
        let cache = temp.child("cache")
        let r = try StrataBinary.run(["index", "--cache", cache, builder.reference("test")])
        #expect(r.status == 0, "\(r.stderr)")
        for b in blobs {
            let hex = Digest.sha256(of: b.blob).hex
            let index = try LayerIndex(path: "\(cache)/index/sha256/\(hex)")
            #expect(index.contentSpans && index.checkpointCount == index.spanCount)
            #expect((try? FileIO.readAll("\(cache)/diffid/sha256/\(hex)")) == Array("\(b.diffID)\n".utf8))
        }
        let first = try LayerIndex(path: "\(cache)/index/sha256/\(Digest.sha256(of: blobs[0].blob).hex)")
        // big (300 000 bytes in 64 KiB chunks) and the four small files (+ the TOC's own entry for eStargz).
        #expect(first.checkpointCount == 5 + 4 + (format == .estargz ? 1 : 0))
    }

    /// A TOC whose digest is not the annotation's, or whose chunks lie outside the blob: the
    /// mount is refused with one line naming the layer.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func lyingTOCsAreRefused(_ format: TableOfContents.Format) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let items = [Items.file(Array("f".utf8), Items.pseudoRandom(count: 100_000, seed: 3))]
        var cases: [(SeekableBlob, String)] = []
        var wrongDigest = try Self.fixture(format, items)
        let key = format == .estargz ? EStargz.tocDigestAnnotation : ZstdChunked.Dialect.legacy.manifestChecksumKey
        wrongDigest.annotations[key] = "sha256:" + String(repeating: "ab", count: 32)
        cases.append((wrongDigest, "TOC digest mismatch"))
        let pastEnd = format == .estargz
            ? try SeekableFixture.estargz(items) { toc in toc.entries[toc.entries.count - 1].offset = 1 << 40 }
            : try SeekableFixture.zstdChunked(items) { toc in toc.entries[toc.entries.count - 1].offset = 1 << 40; toc.entries[toc.entries.count - 1].endOffset = (1 << 40) + 10 }
        cases.append((pastEnd, "outside the blob"))
        let overlapping = format == .estargz
            ? try SeekableFixture.estargz(items) { toc in toc.entries[1].offset = toc.entries[0].offset }
            : try SeekableFixture.zstdChunked(items) { toc in toc.entries[1].offset = toc.entries[0].offset; toc.entries[1].endOffset = toc.entries[0].endOffset }
        cases.append((overlapping, "overlaps"))
        for (n, (blob, why)) in cases.enumerated() {
            let builder = try ImageBuilder(layout: temp.child("layout\(n)"))
            try builder.addSeekableLayer(blob)
            try builder.write(tag: "t")
            let mnt = try temp.makeDirectory("mnt\(n)")
            let r = try StrataBinary.run(["mount", "--cache", temp.child("cache\(n)"), builder.reference("t"), mnt])
            if r.status == 0 { _ = try? StrataBinary.run(["unmount", mnt]) }
            #expect(r.status != 0, "\(why)")
            let lines = r.stderr.split(separator: "\n")
            #expect(lines.count == 1 && r.stderr.contains("layer sha256:\(Digest.sha256(of: blob.blob).hex)") && r.stderr.contains(why),
                    "\(r.stderr)")
        }
    }

    /// A chunk whose bytes do not match the TOC's chunk digest: that file's read is EIO, the
    /// others read.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func aChunkDigestMismatchIsEIO(_ format: TableOfContents.Format) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let good = Items.pseudoRandom(count: 100_000, seed: 5)
        let items = [Items.file(Array("bad".utf8), Items.pseudoRandom(count: 1000, seed: 4)), Items.file(Array("good".utf8), good)]
        let wrong = "sha256:" + String(repeating: "cd", count: 32)
        let blob = format == .estargz
            ? try SeekableFixture.estargz(items) { toc in toc.entries[0].chunkDigest = wrong }
            : try SeekableFixture.zstdChunked(items) { toc in toc.entries[0].digest = wrong }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addSeekableLayer(blob)
        try builder.write(tag: "t")
        let mnt = try temp.makeDirectory("mnt")
        let log = temp.child("log")
        let guardian = try MountGuard(image: builder.reference("t"), mountpoint: mnt, extraArgs: ["--cache", temp.child("cache"), "--log", log])
        defer { try? guardian.unmount() }
        #expect(readError(mnt + "/bad") == EIO)
        #expect(try FileIO.readAll(mnt + "/good") == good)
        try guardian.unmount()
        let text = String(decoding: try FileIO.readAll(log), as: UTF8.self)
        #expect(text.contains("does not match its TOC digest") && text.contains(Digest.sha256(of: blob.blob).hex), "\(text)")
    }

    /// A TOC with a feature the index cannot use (zstd:chunked holes): the layer is indexed from
    /// its stream instead, and mounts.
    @Test func unsupportedTOCFallsBackToTheStream() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let data = Items.pseudoRandom(count: 100_000, seed: 8)
        let blob = try SeekableFixture.zstdChunked([Items.file(Array("f".utf8), data)]) { toc in
            toc.entries[toc.entries.count - 1].chunkType = ZstdChunkedTOCEntry.chunkTypeZeros
        }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addSeekableLayer(blob)
        try builder.write(tag: "t")
        let cache = temp.child("cache")
        let guardian = try MountGuard(image: builder.reference("t"), mountpoint: try temp.makeDirectory("mnt"), extraArgs: ["--cache", cache])
        defer { try? guardian.unmount() }
        #expect(try FileIO.readAll(temp.child("mnt/f")) == data)
        try guardian.unmount()
        let index = try LayerIndex(path: "\(cache)/index/sha256/\(Digest.sha256(of: blob.blob).hex)")
        #expect(!index.contentSpans && FileIO.exists("\(cache)/diffid/sha256/\(Digest.sha256(of: blob.blob).hex)"))
    }
}
