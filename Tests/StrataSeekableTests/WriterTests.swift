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
import StrataHash
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataSeekable

/// A layer with every kind of entry the writers must carry: empty files, hardlinks, symlinks,
/// whiteouts, devices, xattrs, long (PAX) names, files over the chunk size and a sparse file.
enum WriterFixture {
    static let chunk = 1000
    static let big = (0..<3500).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }      // 4 chunks
    static let exact = [UInt8](repeating: 0x61, count: chunk)                          // 1 chunk, exactly
    static let longName = "deep/" + String(repeating: "n", count: 150) + "/" + String(repeating: "f", count: 120)

    static var items: [TarItem] {
        [
            Items.dir("deep/"),
            Items.dir("deep/" + String(repeating: "n", count: 150) + "/"),
            Items.file(longName, "long name content"),
            Items.dir("etc/", xattrs: ["user.dir": Array("d".utf8)]),
            Items.file("etc/empty"),
            Items.file("etc/big", mode: 0o755),
            Items.file("etc/caps", "x", xattrs: ["security.capability": [1, 0, 0, 2, 0xff], "user.k": []]),
            Items.hardlink("etc/big-link", to: "etc/big"),
            Items.symlink("etc/sym", to: "../etc/big"),
            Items.whiteout("etc/gone"),
            Items.opaque("deep/"),
            Items.charDevice("etc/null", major: 1, minor: 3),
            Items.blockDevice("etc/blk", major: 8, minor: 1),
            Items.fifo("etc/fifo"),
            Items.file("etc/exact", String(decoding: exact, as: UTF8.self), uid: 1000, gid: 1000,
                       nanoseconds: 700_000_000),
            Items.file(EStargz.tocTarName, "an old TOC is dropped by eStargz"),
        ].map { item in
            // Items.file takes a String; the binary payload is put in here.
            if item.0.pathString == "etc/big" {
                var entry = item.0
                entry.size = UInt64(big.count)
                return (entry, big)
            }
            return item
        }
    }

    static var tar: [UInt8] { get throws { try TarWriter.archive(items) } }
}

/// Writes `tar` with the writer into a temporary file and returns the blob bytes.
func writeBlob(_ tar: [UInt8], in dir: TempDirectory, name: String,
               _ body: (TarSource, FileDescriptor) throws -> SeekableLayerResult) throws -> (SeekableLayerResult, [UInt8], String) {
    let path = dir.child(name)
    let fd = try FileDescriptor.open(path, O_CREAT | O_TRUNC | O_RDWR)
    defer { fd.close() }
    let result = try body(MemoryTarSource(tar), fd)
    let blob = try FileIO.readAll(path)
    return (result, blob, path)
}

/// Decodes `bytes` (gzip members or zstd frames) completely.
func decode(_ bytes: [UInt8], _ compression: LayerCompression, in dir: TempDirectory) throws -> [UInt8] {
    let path = dir.child("piece-\(UInt64.random(in: 0...UInt64.max))")
    try FileIO.writeAtomically(path, bytes, durable: false)
    let fd = try FileDescriptor.open(path, O_RDONLY)
    defer { fd.close() }
    let source = DecodedTarSource(compression: compression, file: fd, size: UInt64(bytes.count))
    var out: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = try buffer.withUnsafeMutableBytes { try source.read(into: $0) }
        if n == 0 { break }
        out += buffer[0..<n]
    }
    return out
}

func tarEntries(_ tar: [UInt8]) throws -> [(TarEntry, [UInt8])] {
    let reader = TarReader(source: MemoryTarSource(tar))
    var out: [(TarEntry, [UInt8])] = []
    while let entry = try reader.next() {
        var data = [UInt8](repeating: 0, count: Int(entry.storedSize))
        if !data.isEmpty { _ = try data.withUnsafeMutableBytes { try reader.readData(into: $0) } }
        out.append((entry, data))
    }
    return out
}

/// The fields a layer carries, without where they sit in the stream.
func comparable(_ e: TarEntry) -> String {
    "\(e.pathString) \(e.type) \(e.mode) \(e.uid) \(e.gid) \(e.size) \(e.mtimeSeconds).\(e.mtimeNanoseconds) "
        + "\(e.linkTargetString) \(e.devMajor),\(e.devMinor) \(e.xattrs.map { "\($0.name)=\($0.value)" })"
}

func sha(_ bytes: some Collection<UInt8>) -> String { "sha256:" + SHA256Hasher.hex(of: Array(bytes)) }

@Suite struct EStargzWriterTests {
    @Test func blobIsAGzipTarWithTheSameEntriesAndATOC() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let source = try WriterFixture.tar
        let (result, blob, _) = try writeBlob(source, in: dir, name: "estargz") {
            try EStargzWriter(chunkSize: WriterFixture.chunk).write(tar: $0, to: $1)
        }
        #expect(result.blobSize == UInt64(blob.count))
        #expect("sha256:" + result.blobSHA256Hex == sha(blob))

        let tar = try decode(blob, .gzip, in: dir)
        #expect("sha256:" + result.diffIDHex == sha(tar))
        #expect(result.uncompressedSize == UInt64(tar.count))
        #expect(result.annotations[EStargz.uncompressedSizeAnnotation] == String(tar.count))
        let entries = try tarEntries(tar)
        let expected = try tarEntries(source).filter { $0.0.pathString != EStargz.tocTarName }
        #expect(entries.dropLast().map { comparable($0.0) } == expected.map { comparable($0.0) })
        #expect(entries.dropLast().map(\.1) == expected.map(\.1))
        let last = try #require(entries.last)
        #expect(last.0.pathString == EStargz.tocTarName)
        #expect(sha(last.1) == result.tocDigest)
        #expect(result.annotations[EStargz.tocDigestAnnotation] == result.tocDigest)
        // The stream ends with the TOC entry and the end-of-archive blocks, nothing else.
        #expect(tar.suffix(1024).allSatisfy { $0 == 0 })
    }

    @Test func footerTOCAndChunksLocateTheData() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let (result, blob, _) = try writeBlob(try WriterFixture.tar, in: dir, name: "estargz") {
            try EStargzWriter(chunkSize: WriterFixture.chunk).write(tar: $0, to: $1)
        }
        let footer = try EStargzFooter.decode(tail: Array(blob.suffix(EStargzFooter.maxSize)))
        #expect(footer.kind == .estargz)
        // The TOC member alone decodes to a tar whose only entry is the TOC.
        let tocMember = Array(blob[Int(footer.tocOffset)..<(blob.count - EStargzFooter.size)])
        let tocTar = try tarEntries(try decode(tocMember, .gzip, in: dir))
        #expect(tocTar.map { $0.0.pathString } == [EStargz.tocTarName])
        let tocJSON = try #require(tocTar.first?.1)
        #expect(sha(tocJSON) == result.tocDigest)
        let toc = try JSONDecoder().decode(EStargzTOC.self, from: Data(tocJSON))
        #expect(toc.version == 1 && toc.entries.count == result.tocEntries)
        #expect(!toc.entries.contains { $0.name == EStargz.tocTarName })

        // Every chunk's member starts with exactly its bytes, and its digest says so.
        let offsets = toc.entries.compactMap(\.offset).map(Int.init) + [Int(footer.tocOffset)]
        #expect(offsets == offsets.sorted())
        var files: [String: [UInt8]] = [:]
        for entry in toc.entries where entry.type == "reg" || entry.type == "chunk" {
            guard let offset = entry.offset else { continue }
            let next = try #require(offsets.first { $0 > Int(offset) })
            let member = try decode(Array(blob[Int(offset)..<next]), .gzip, in: dir)
            let start = Int(entry.chunkOffset ?? 0)
            let fileSize = Int(toc.entries.first { $0.name == entry.name && $0.type == "reg" }?.size ?? 0)
            let size = entry.chunkSize.map(Int.init) ?? (fileSize - start)
            let data = Array(member.prefix(size))
            #expect(sha(data) == entry.chunkDigest, "\(entry.name) at \(start)")
            files[entry.name, default: []] += data
        }
        #expect(files["etc/big"] == WriterFixture.big)
        #expect(files["etc/exact"] == WriterFixture.exact)
        #expect(files[WriterFixture.longName] == Array("long name content".utf8))
        let big = try #require(toc.entries.first { $0.name == "etc/big" })
        #expect(big.digest == sha(WriterFixture.big) && big.size == 3500 && big.chunkSize == 1000 && big.mode == 0o755)
        #expect(toc.entries.filter { $0.name == "etc/big" }.map(\.chunkOffset) == [nil, 1000, 2000, 3000])
        #expect(toc.entries.filter { $0.name == "etc/big" }.map(\.chunkSize) == [1000, 1000, 1000, nil])
        let exact = try #require(toc.entries.first { $0.name == "etc/exact" })
        #expect(exact.uid == 1000 && exact.chunkSize == 1000 && exact.modtime == RFC3339.format(seconds: Items.mtime, nanoseconds: 700_000_000))
        let empty = try #require(toc.entries.first { $0.name == "etc/empty" })
        #expect(empty.offset == nil && empty.size == nil && empty.digest == sha([UInt8]()))
        let caps = try #require(toc.entries.first { $0.name == "etc/caps" })
        #expect(try caps.decodedXattrs().map(\.name) == ["security.capability", "user.k"])
        #expect(try caps.decodedXattrs().first?.value == [1, 0, 0, 2, 0xff])
        #expect(toc.entries.first { $0.name == "etc/big-link" }?.linkName == "etc/big")
        #expect(toc.entries.first { $0.name == "etc/sym" }?.type == "symlink")
        let null = try #require(toc.entries.first { $0.name == "etc/null" })
        #expect(null.devMajor == 1 && null.devMinor == 3)
        #expect(toc.entries.first { $0.name == "etc/fifo" }?.type == "fifo")
        #expect(toc.entries.contains { $0.name == "etc/.wh.gone" && $0.type == "reg" })
    }

    @Test func systemToolsReadIt() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let (_, _, path) = try writeBlob(try WriterFixture.tar, in: dir, name: "estargz") {
            try EStargzWriter(chunkSize: WriterFixture.chunk).write(tar: $0, to: $1)
        }
        let listing = try Command.check("/bin/sh", ["-c", "gzip -dc < '\(path)' | tar -t"]).stdoutString
        let names = listing.split(separator: "\n").map(String.init)
        #expect(names.count == WriterFixture.items.count)        // the old TOC out, the new one in
        #expect(names.last == EStargz.tocTarName && names.contains(WriterFixture.longName))
    }

    @Test func sameInputSameBlob() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let write = { (name: String) in
            try writeBlob(try WriterFixture.tar, in: dir, name: name) { try EStargzWriter().write(tar: $0, to: $1) }
        }
        #expect(try write("a").0 == write("b").0)
    }

    @Test func emptyLayer() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let (result, blob, _) = try writeBlob(TarWriter.endOfArchive, in: dir, name: "e") {
            try EStargzWriter().write(tar: $0, to: $1)
        }
        let footer = try EStargzFooter.decode(tail: Array(blob.suffix(51)))
        #expect(footer.tocOffset == 0 && result.tocEntries == 0)
        #expect(try tarEntries(try decode(blob, .gzip, in: dir)).map { $0.0.pathString } == [EStargz.tocTarName])
    }

    @Test func nonUTF8NamesAreRefused() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let tar = try TarWriter.archive([Items.file([0x61, 0xff], [1])])
        #expect(throws: SeekableError.self) {
            _ = try writeBlob(tar, in: dir, name: "x") { try EStargzWriter().write(tar: $0, to: $1) }
        }
    }
}

@Suite struct ZstdChunkedWriterTests {
    @Test(arguments: ZstdChunked.Dialect.allCases)
    func blobIsAZstdTarWithATOCInASkippableFrame(dialect: ZstdChunked.Dialect) throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let source = try WriterFixture.tar
        let (result, blob, path) = try writeBlob(source, in: dir, name: "zstd") {
            try ZstdChunkedWriter(chunkSize: WriterFixture.chunk, dialect: dialect).write(tar: $0, to: $1)
        }
        #expect(result.blobSize == UInt64(blob.count) && "sha256:" + result.blobSHA256Hex == sha(blob))
        let tar = try decode(blob, .zstd, in: dir)         // skippable frames are skipped by decoders
        #expect("sha256:" + result.diffIDHex == sha(tar))
        let entries = try tarEntries(tar)
        let expected = try tarEntries(source)
        #expect(entries.map { comparable($0.0) } == expected.map { comparable($0.0) })
        #expect(entries.map(\.1) == expected.map(\.1))

        let listing = try Command.check("/bin/sh", ["-c", "zstd -dc < '\(path)' | tar -t"]).stdoutString
        #expect(listing.split(separator: "\n").count == expected.count)

        // Annotations and footer agree on where the TOC is; its checksum is of the compressed bytes.
        let footer = try ZstdChunkedFooter.decode(tail: Array(blob.suffix(ZstdChunked.maxFooterFrameSize)))
        #expect(footer.dialect == dialect)
        let positionText = try #require(result.annotations[dialect.manifestPositionKey])
        let position = try #require(ZstdChunkedPosition(annotation: positionText))
        #expect(position == footer.toc)
        #expect(result.annotations[ZstdChunked.Dialect.legacy.manifestPositionKey] == position.annotation)
        let compressed = Array(blob[Int(position.offset)..<Int(position.offset + position.length)])
        #expect(Array(blob[(Int(position.offset) - 8)..<(Int(position.offset) - 4)]) == ZstdChunked.skippableFrameMagic)
        #expect(sha(compressed) == result.annotations[dialect.manifestChecksumKey])
        let json = try decode(compressed, .zstd, in: dir)
        #expect(UInt64(json.count) == position.uncompressedLength)
        let toc = try JSONDecoder().decode(ZstdChunkedTOC.self, from: Data(json))
        #expect(toc.entries.count == result.tocEntries)

        // [offset, endOffset) of a one-chunk file decodes to the file exactly; chunks to their bytes.
        let caps = try #require(toc.entries.first { $0.name == "etc/caps" })
        let capsStart = try #require(caps.offset), capsEnd = try #require(caps.endOffset)
        let capsData = try decode(Array(blob[Int(capsStart)..<Int(capsEnd)]), .zstd, in: dir)
        #expect(capsData == Array("x".utf8) && caps.digest == sha(capsData) && caps.chunkDigest == nil)
        let bigEntries = toc.entries.filter { $0.name == "etc/big" }
        #expect(bigEntries.map(\.type) == ["reg", "chunk", "chunk", "chunk"])
        #expect(bigEntries.map(\.chunkSize) == [1000, 1000, 1000, 500])
        let bigEnd = try #require(bigEntries[0].endOffset)
        var rebuilt: [UInt8] = []
        let starts = try bigEntries.map { try #require($0.offset) }
        for (i, chunk) in bigEntries.enumerated() {
            let end = i + 1 < bigEntries.count ? Int(starts[i + 1]) : Int(bigEnd)
            let data = try decode(Array(blob[Int(starts[i])..<end]), .zstd, in: dir)
            #expect(sha(data) == chunk.chunkDigest && Int64(data.count) == chunk.chunkSize)
            rebuilt += data
        }
        #expect(rebuilt == WriterFixture.big && bigEntries[0].digest == sha(WriterFixture.big))
        let empty = try #require(toc.entries.first { $0.name == "etc/empty" })
        #expect(empty.offset == nil && empty.digest == nil)
        let exact = try #require(toc.entries.first { $0.name == "etc/exact" })
        #expect(pair(exact.modtime) == [Items.mtime, 700_000_000])
        let blk = try #require(toc.entries.first { $0.name == "etc/blk" })
        #expect(blk.type == "block" && blk.devMajor == 8 && blk.devMinor == 1)
    }
}

@Suite struct SparseInputTests {
    @Test func sparseFilesBecomeOrdinary() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        // GNU tar writes PAX 1.0 sparse files; make one and convert it.
        let work = try dir.makeDirectory("src")
        try Command.check("/bin/sh", ["-c", "cd '\(work)' && printf abc > s && truncate -s 100000 s && printf xyz >> s && tar --sparse --format=pax -cf ../sparse.tar s"])
        let tar = try FileIO.readAll(dir.child("sparse.tar"))
        #expect(try tarEntries(tar).first?.0.sparseMap != nil)
        let (_, blob, _) = try writeBlob(tar, in: dir, name: "z") {
            try ZstdChunkedWriter(chunkSize: 40000).write(tar: $0, to: $1)
        }
        let out = try tarEntries(try decode(blob, .zstd, in: dir))
        let file = try #require(out.first)
        #expect(file.0.sparseMap == nil && file.1.count == 100_003)
        #expect(Array(file.1.prefix(3)) == Array("abc".utf8) && Array(file.1.suffix(3)) == Array("xyz".utf8))
        #expect(file.1[3..<100_000].allSatisfy { $0 == 0 })
    }
}
