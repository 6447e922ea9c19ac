import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSystem
import StrataTar
@testable import StrataIndex

/// A scratch directory that removes itself.
final class Scratch {
    let path = "/tmp/strata-index-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    init() { try! FileIO.makeDirectories(path) }
    deinit { _ = system("rm -rf '\(path)'") }

    /// Writes a blob and describes it.
    func blob(_ bytes: [UInt8], _ compression: LayerCompression, name: String = "blob") throws -> LayerBlob {
        let p = "\(path)/\(name)"
        try FileIO.writeAtomically(p, bytes)
        return LayerBlob(path: p, digestHex: SHA256Hasher.hex(of: bytes), size: UInt64(bytes.count), compression: compression)
    }
}

func entry(_ path: String, _ type: TarEntryType = .regular, size: Int = 0, link: String = "", mode: UInt32 = 0o644) -> TarEntry {
    TarEntry(path: Array(path.utf8), type: type, mode: mode, uid: 1000, gid: 1000, size: UInt64(size),
             mtimeSeconds: 1_700_000_000, mtimeNanoseconds: 123_456_789, linkTarget: Array(link.utf8))
}

func compress(_ tar: [UInt8], _ c: LayerCompression) -> [UInt8] {
    switch c {
    case .none: tar
    case .gzip: Gzip.compress(tar)
    case .zstd: Zstd.compress(tar, frameSize: 1 << 20)
    }
}

/// Deterministic mixed content: compressible text runs and pseudo-random bytes.
func content(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var out = [UInt8]()
    out.reserveCapacity(count)
    while out.count < count {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        if state % 3 == 0 {
            out.append(contentsOf: Array("line \(state % 1000) of some text\n".utf8).prefix(count - out.count))
        } else {
            for i in 0..<min(64, count - out.count) { out.append(UInt8(truncatingIfNeeded: state >> (i % 8 * 8))) }
        }
    }
    return out
}

@Suite struct IndexBuilderTests {
    @Test(arguments: [LayerCompression.none, .gzip, .zstd])
    func entriesAndDataOffsets(compression: LayerCompression) throws {
        let s = Scratch()
        let big = content(9 << 20, seed: 7)
        let small = Array("hello\n".utf8)
        let tar = try TarWriter.archive([
            (entry("./etc/", .directory, mode: 0o755), []),
            (entry("./etc/hello", size: small.count), small),
            (entry("big.bin", size: big.count), big),
            (entry("etc/link", .symlink, link: "hello"), []),
            (entry("etc/hard", .hardlink, link: "./etc/hello"), []),
            (entry("etc/.wh.gone"), []),
            (entry("var/.wh..wh..opq"), []),
        ])
        let blob = try s.blob(compress(tar, compression), compression)
        let bytes = try IndexBuilder.build(blob, checkpointSpacing: 1 << 20)
        #expect(try IndexBuilder.build(blob, checkpointSpacing: 1 << 20) == bytes)   // deterministic
        try FileIO.writeAtomically("\(s.path)/idx", bytes)
        let index = try LayerIndex(path: "\(s.path)/idx")
        #expect(index.entryCount == 7)
        #expect(index.digestHex == blob.digestHex)
        #expect(index.uncompressedSize == UInt64(tar.count))
        let paths = (0..<index.entryCount).map { String(decoding: index.entry($0).path, as: UTF8.self) }
        #expect(paths == ["etc", "etc/hello", "big.bin", "etc/link", "etc/hard", "etc/gone", "var"])
        #expect(index.entry(5).kind == .whiteout)
        #expect(index.entry(6).kind == .opaque)
        #expect(index.entry(4).kind == .hardlink)
        #expect(Array(index.entry(4).linkTarget) == Array("etc/hello".utf8))
        #expect(index.entry(1).mtimeNanoseconds == 123_456_789)
        if compression == .gzip { #expect(index.checkpointCount > 5) }

        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 4 << 20),
                                 copyPath: "\(s.path)/copy.tar")
        let e = index.entry(2)
        for offset in [0, 1 << 20 - 5, 3 << 20 + 17, big.count - 100] {
            var got: [UInt8] = []
            try data.read(offset: e.dataOffset + UInt64(offset), count: 100) { got = Array($0) }
            #expect(got == Array(big[offset..<(offset + 100)]))
        }
        // A range across span boundaries, copied.
        var whole = [UInt8](repeating: 0, count: big.count)
        try whole.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
        #expect(whole == big)
    }

    @Test func digestMismatchNamesTheLayer() throws {
        let s = Scratch()
        let tar = try TarWriter.archive([(entry("a", size: 1), [1])])
        var blob = try s.blob(Gzip.compress(tar), .gzip)
        blob.digestHex = String(repeating: "0", count: 64)
        #expect { try IndexBuilder.build(blob) } throws: { "\($0)".contains("sha256:0000") && "\($0)".contains("digest mismatch") }
    }

    @Test func truncatedGzipIsAnError() throws {
        let s = Scratch()
        let tar = try TarWriter.archive([(entry("a", size: 100_000), content(100_000, seed: 1))])
        let gz = Gzip.compress(tar)
        let blob = try s.blob(Array(gz.prefix(gz.count / 2)), .gzip)
        #expect { try IndexBuilder.build(blob) } throws: { "\($0)".contains("sha256:\(blob.digestHex)") }
    }

    @Test func sizeMismatchIsAnError() throws {
        let s = Scratch()
        var blob = try s.blob(try TarWriter.archive([(entry("a", size: 1), [1])]), .none)
        blob.size += 1
        #expect { try IndexBuilder.build(blob) } throws: { "\($0)".contains("descriptor says") }
    }

    @Test func escapingPathIsAnError() throws {
        let s = Scratch()
        let blob = try s.blob(try TarWriter.archive([(entry("../../etc/passwd", size: 1), [1])]), .none)
        #expect { try IndexBuilder.build(blob) } throws: { "\($0)".contains("../../etc/passwd") && "\($0)".contains("escapes") }
    }

    @Test func whiteoutWithoutNameIsAnError() throws {
        let s = Scratch()
        let blob = try s.blob(try TarWriter.archive([(entry("dir/.wh."), [])]), .none)
        #expect { try IndexBuilder.build(blob) } throws: { "\($0)".contains("dir/.wh.") }
    }

    @Test func garbageHeaderIsAnError() throws {
        let s = Scratch()
        var tar = try TarWriter.archive([(entry("a", size: 10), Array(repeating: 65, count: 10))])
        for i in 0..<100 { tar[i] = UInt8(truncatingIfNeeded: i &* 37) }
        let blob = try s.blob(tar, .none)
        #expect(throws: IndexError.self) { try IndexBuilder.build(blob) }
    }
}

@Suite struct IndexCacheTests {
    @Test func corruptOrTruncatedIndexIsRebuilt() throws {
        let s = Scratch()
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let tar = try TarWriter.archive([(entry("a", size: 3), [1, 2, 3])])
        let blob = try s.blob(Gzip.compress(tar), .gzip)
        let (first, built) = try cache.index(blob)
        #expect(built)
        #expect(first.entryCount == 1)
        #expect(try cache.index(blob).built == false)
        let path = cache.indexPath(digestHex: blob.digestHex)
        var bytes = try FileIO.readAll(path)
        bytes[IndexFormat.Header.size + 3] ^= 0xFF
        try FileIO.writeAtomically(path, bytes)
        #expect(cache.load(digestHex: blob.digestHex) == nil)
        #expect(try cache.index(blob).built)
        try FileIO.writeAtomically(path, Array(bytes.prefix(200)))
        #expect(try cache.index(blob).built)
    }
}
