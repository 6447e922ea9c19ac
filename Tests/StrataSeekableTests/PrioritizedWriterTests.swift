#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
import StrataCodec
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataSeekable

/// The writers with prioritized files (`convert --record-in`): those files first, then the
/// landmark (eStargz) or the prefetch-end annotation (zstd:chunked), then the rest in order;
/// the layer's entries unchanged as a set.
@Suite struct PrioritizedWriterTests {
    static let items: [TarItem] = [
        Items.dir("a/"),
        Items.file("a/one", "one"),
        Items.whiteout("a/gone"),
        Items.dir("b/"),
        Items.file("b/two", "two"),
        Items.dir("c/"),
        Items.file(Array("c/three".utf8), (0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 13) }),
        Items.hardlink("c/link", to: "a/one"),
        Items.dir("d/"),
        Items.file("d/dup", "first"),
        Items.file("d/dup", "second"),
        Items.file("z", "last"),
    ]
    /// Two movable files (in reverse source order), a duplicated path, a hardlink, a whiteout,
    /// a path the layer lacks, and a repeat.
    static let record = ["c/three", "a/one", "d/dup", "c/link", "a/.wh.gone", "nope/x", "c/three"]

    static func prioritization(_ tar: [UInt8], _ paths: [String], in dir: TempDirectory) throws -> Prioritization {
        let spool = try FileDescriptor.open(dir.child("spool-\(UInt32.random(in: 0...UInt32.max))"), O_CREAT | O_RDWR | O_TRUNC)
        return Prioritization(paths: paths, reopen: { MemoryTarSource(tar) }, spool: spool)
    }

    static func names(_ entries: [(TarEntry, [UInt8])]) -> [String] { entries.map { normalizedName($0.0.path) } }

    /// The source's entries, as a multiset of their fields and data.
    static func sortedContent(_ entries: [(TarEntry, [UInt8])]) -> [String] {
        entries.map { comparable($0.0) + " " + sha($0.1) }.sorted()
    }

    @Test func estargzPutsTheRecordedFilesFirstThenTheLandmark() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let source = try TarWriter.archive(Self.items)
        let p = try Self.prioritization(source, Self.record, in: dir)
        defer { p.spool.close() }
        let (result, blob, path) = try writeBlob(source, in: dir, name: "estargz") {
            try EStargzWriter(chunkSize: 1000).write(tar: $0, to: $1, prioritized: p)
        }
        let moved = try #require(result.prioritization)
        #expect(moved.moved == ["c/three", "a/one"])
        #expect(moved.present == ["c/three", "a/one", "d/dup", "c/link", "a/.wh.gone"])

        let entries = try tarEntries(try decode(blob, .gzip, in: dir))
        #expect(Self.names(entries) == ["c", "c/three", "a", "a/one", EStargz.prefetchLandmark,
                                        "a/.wh.gone", "b", "b/two", "c/link", "d", "d/dup", "d/dup", "z",
                                        EStargz.tocTarName])
        // Nothing else changed: the same entries with the same data, plus the landmark and TOC.
        let landmark = try #require(entries.first { normalizedName($0.0.path) == EStargz.prefetchLandmark })
        #expect(landmark.1 == [EStargz.landmarkContents] && landmark.0.type == .regular)
        let written = entries.filter { ![EStargz.prefetchLandmark, EStargz.tocTarName].contains(normalizedName($0.0.path)) }
        #expect(Self.sortedContent(written) == Self.sortedContent(try tarEntries(source)))
        // Entries of one name keep their order.
        #expect(written.filter { $0.0.pathString == "d/dup" }.map(\.1) == [Array("first".utf8), Array("second".utf8)])

        // Readers: the TOC's prefetch range ends where the landmark's member starts, after the files.
        let toc = try #require(try TableOfContents.read(annotations: result.annotations, blobSize: UInt64(blob.count)) { r in
            Array(blob[Int(r.lowerBound)..<Int(r.upperBound)])
        }).toc
        let three = try #require(toc.entries.first { $0.path == Array("c/three".utf8) })
        let one = try #require(toc.entries.first { $0.path == Array("a/one".utf8) })
        let two = try #require(toc.entries.first { $0.path == Array("b/two".utf8) })
        let end = try #require(toc.prefetch.first?.upperBound)
        #expect(toc.prefetch.count == 1 && toc.prefetch[0].lowerBound == 0)
        #expect(three.chunks.allSatisfy { $0.compressedEnd <= end } && one.chunks[0].compressedEnd <= end)
        #expect(two.chunks[0].compressedStart >= end)
        // Still an ordinary tar+gzip.
        let listing = try Command.check("/bin/sh", ["-c", "gzip -dc < '\(path)' | tar -t"]).stdoutString
        #expect(listing.split(separator: "\n").first == "c/" && listing.contains("a/.wh.gone"))
    }

    @Test func estargzLayerWithoutTheFilesGetsTheNoPrefetchLandmark() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let source = try TarWriter.archive(Self.items)
        let p = try Self.prioritization(source, ["elsewhere/f", "d/dup"], in: dir)
        defer { p.spool.close() }
        let (result, blob, _) = try writeBlob(source, in: dir, name: "estargz") {
            try EStargzWriter(chunkSize: 1000).write(tar: $0, to: $1, prioritized: p)
        }
        #expect(result.prioritization?.moved == [])
        let names = Self.names(try tarEntries(try decode(blob, .gzip, in: dir)))
        #expect(names.first == EStargz.noPrefetchLandmark)
        #expect(Array(names.dropFirst().dropLast()) == Self.names(try tarEntries(source)))
    }

    @Test func noRecordWritesTheSameBlobAsBefore() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let source = try TarWriter.archive(Self.items)
        let (plain, a, _) = try writeBlob(source, in: dir, name: "a") { try EStargzWriter().write(tar: $0, to: $1) }
        let (none, b, _) = try writeBlob(source, in: dir, name: "b") { try EStargzWriter().write(tar: $0, to: $1, prioritized: nil) }
        #expect(a == b && plain == none && plain.prioritization == nil)
    }

    @Test func zstdChunkedAnnotatesWhereThePrioritizedFramesEnd() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let source = try TarWriter.archive(Self.items)
        let p = try Self.prioritization(source, Self.record, in: dir)
        defer { p.spool.close() }
        let (result, blob, path) = try writeBlob(source, in: dir, name: "zstd") {
            try ZstdChunkedWriter(chunkSize: 1000).write(tar: $0, to: $1, prioritized: p)
        }
        let entries = try tarEntries(try decode(blob, .zstd, in: dir))
        #expect(Self.names(entries) == ["c", "c/three", "a", "a/one", "a/.wh.gone", "b", "b/two", "c/link", "d", "d/dup", "d/dup", "z"])
        #expect(Self.sortedContent(entries) == Self.sortedContent(try tarEntries(source)))
        let endText = try #require(result.annotations[ZstdChunked.prefetchEndAnnotation])
        let end = try #require(UInt64(endText))

        func read(_ annotations: [String: String]) throws -> TableOfContents {
            try #require(try TableOfContents.read(annotations: annotations, blobSize: UInt64(blob.count)) { r in
                Array(blob[Int(r.lowerBound)..<Int(r.upperBound)])
            }).toc
        }
        let toc = try read(result.annotations)
        #expect(toc.prefetch == [0..<end])
        let one = try #require(toc.entries.first { $0.path == Array("a/one".utf8) })
        let two = try #require(toc.entries.first { $0.path == Array("b/two".utf8) })
        #expect(one.chunks[0].compressedEnd == end && two.chunks[0].compressedStart >= end)
        // A lying value is refused like any other lie of a TOC.
        for lie in [String(blob.count), "-1", "12abc", ""] {
            var annotations = result.annotations
            annotations[ZstdChunked.prefetchEndAnnotation] = lie
            #expect(throws: TOCError.self) { _ = try read(annotations) }
        }
        // Without the annotation: no prefetch, the rest as before.
        var plain = result.annotations
        plain[ZstdChunked.prefetchEndAnnotation] = nil
        #expect(try read(plain).prefetch.isEmpty)
        let listing = try Command.check("/bin/sh", ["-c", "zstd -dc < '\(path)' | tar -t"]).stdoutString
        #expect(listing.split(separator: "\n").count == Self.items.count)
    }

    @Test func recordFormats() throws {
        let text = """
        {"path":"usr/bin/python3","manifestDigest":"sha256:00","layerIndex":2}
        {"path":"/etc/ld.so.cache"}

        ./lib//x/
        """
        let record = try ReadRecord.parse(Array(text.utf8), file: "rec")
        #expect(record.entries == [ReadRecord.Entry(path: "usr/bin/python3", manifestDigest: "sha256:00", layerIndex: 2),
                                   ReadRecord.Entry(path: "etc/ld.so.cache"), ReadRecord.Entry(path: "lib/x")])
        #expect(try ReadRecord.parse(try record.encoded(), file: "again") == record)
        for (bad, line) in [("a\n{\"path\": \n", 2), ("{\"layerIndex\":1}", 1), ("x\ny\n{\"path\":\"p\",\"layerIndex\":-1}", 3)] {
            #expect { _ = try ReadRecord.parse(Array(bad.utf8), file: "/tmp/rec.json") } throws: { error in
                "\(error)".contains("/tmp/rec.json: line \(line):")
            }
        }
    }
}
