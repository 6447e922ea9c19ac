import Testing
import Glibc
import StrataCodec
import StrataSystem
import StrataTar
@testable import StrataIndex

/// Issue 10 point 6: every section of a layer index is checksummed, damage is found when the
/// section is read, and a damaged index is rebuilt from the blob (at open, or while serving).
@Suite struct IndexDamageTests {
    /// A gzip layer with several checkpoints (so windows), xattrs and a few entries.
    static func layer(_ s: Scratch) throws -> (blob: LayerBlob, big: [UInt8]) {
        let big = content(6 << 20, seed: 11)
        var withXattr = entry("etc/conf", size: 5)
        withXattr.xattrs = [TarXattr(name: "user.note", value: Array("value".utf8))]
        let tar = try TarWriter.archive([
            (entry("etc/", .directory, mode: 0o755), []),
            (withXattr, Array("conf\n".utf8)),
            (entry("big.bin", size: big.count), big),
            (entry("etc/link", .symlink, link: "conf"), []),
        ])
        return (try s.blob(Gzip.compress(tar), .gzip), big)
    }

    static func flip(_ path: String, at offset: Int) throws {
        let fd = try FileDescriptor.open(path, O_RDWR)
        defer { fd.close() }
        var byte: UInt8 = 0
        _ = try withUnsafeMutableBytes(of: &byte) { try fd.readFully(into: $0, at: UInt64(offset)) }
        byte ^= 0x5A
        try withUnsafeBytes(of: &byte) { try fd.writeAll($0, at: UInt64(offset)) }
    }

    /// Where each section of an index lies: (name, offset, length, found by an open with `verify` false).
    static func sections(_ bytes: [UInt8]) -> [(String, Int, Int, Bool)] {
        bytes.withUnsafeBytes { b in
            typealias H = IndexFormat.Header
            func place(_ s: CacheFileFormat.Section) -> (Int, Int) { let r = s.range(in: b); return (r.lowerBound, r.count) }
            let (entries, xattrs) = (place(IndexFormat.entries), place(IndexFormat.xattrs))
            let (checkpoints, strings) = (place(IndexFormat.checkpoints), place(IndexFormat.strings))
            let spans = place(IndexFormat.spans)
            return [
                ("header", H.blobSize.offset, 8, true),
                ("header digest", H.digest.offset, 32, true),
                ("header section checksums", H.entriesChecksum.offset, 40, true),
                ("entries", entries.0, entries.1, false),
                ("xattrs", xattrs.0, xattrs.1, false),
                ("checkpoints", checkpoints.0, checkpoints.1, true),
                ("strings", strings.0, strings.1, false),
                ("span digests", spans.0, spans.1, true),
            ]
        }
    }

    @Test func everySectionIsChecked() throws {
        let s = Scratch()
        let (blob, _) = try Self.layer(s)
        let good = try IndexBuilder.build(blob)
        for (name, offset, length, atOpen) in Self.sections(good) {
            #expect(length > 0, "\(name) is empty")
            for position in [offset, offset + length / 2, offset + length - 1] {
                var bad = good
                bad[position] ^= 0x01
                let path = "\(s.path)/idx-\(name)-\(position)"
                try FileIO.writeAtomically(path, bad)
                if atOpen {
                    #expect(throws: IndexDamage.self, "\(name) at \(position)") { try LayerIndex(path: path, verify: false) }
                } else {
                    // Not read by a warm mount, so not checked then; checked by a full open.
                    #expect(throws: Never.self, "\(name) at \(position)") { try LayerIndex(path: path, verify: false) }
                }
                #expect(throws: IndexDamage.self, "\(name) at \(position)") { try LayerIndex(path: path, verify: true) }
            }
        }
    }

    @Test func everyWindowIsChecked() throws {
        let s = Scratch()
        let (blob, _) = try Self.layer(s)
        let good = try IndexBuilder.build(blob, checkpointSpacing: 1 << 20)
        let path = "\(s.path)/idx"
        try FileIO.writeAtomically(path, good)
        let index = try LayerIndex(path: path, verify: true)
        let windowed = (0..<index.checkpointCount).filter { !(try! index.checkpoint($0)).window.isEmpty }
        #expect(windowed.count >= 3)
        let windows = good.withUnsafeBytes { IndexFormat.windows.offset(in: $0) }
        for i in windowed {
            typealias C = IndexFormat.Checkpoint
            let record = good.withUnsafeBytes { b in IndexFormat.checkpoints.offset(in: b) + i * C.size }
            let (start, length) = good.withUnsafeBytes { b in (Int(b.u64(record, C.windowOffset)), Int(b.u32(record, C.storedWindowLength))) }
            var bad = good
            bad[windows + start + length / 2] ^= 0x80
            try FileIO.writeAtomically(path, bad)
            let damaged = try LayerIndex(path: path, verify: true)   // windows are checked when read
            #expect(throws: IndexDamage.self) { try damaged.checkpoint(i) }
            for other in windowed where other != i { #expect(throws: Never.self) { try damaged.checkpoint(other) } }
        }
    }

    @Test func damagedCachedIndexIsRebuiltAtOpen() throws {
        let s = Scratch()
        let (blob, _) = try Self.layer(s)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        #expect(try cache.index(blob).built)
        let path = cache.indexPath(digestHex: blob.digestHex)
        let good = try FileIO.readAll(path)
        for (name, offset, _, atOpen) in Self.sections(good) where atOpen {
            try Self.flip(path, at: offset + 3)
            let (index, built) = try cache.index(blob, verify: false)
            #expect(built, "\(name)")
            #expect(try index.checksum == LayerIndex(file: MappedFile(path: path)).checksum)
            let restored = try FileIO.readAll(path) == good
            #expect(restored, "\(name)")
        }
        // Sections read only to build a merged tree: found by a full open, then rebuilt.
        try Self.flip(path, at: Self.sections(good).first { $0.0 == "strings" }!.1)
        #expect(try cache.index(blob, verify: true).built)
        let restored = try FileIO.readAll(path) == good
        #expect(restored)
    }

    /// A layer indexed in a cache, then every window of its index damaged in place, under the
    /// index opened (as a mount opens it) before the damage.
    struct DamagedWindows {
        let blob: LayerBlob, big: [UInt8], cache: LayerCache, index: LayerIndex
        let path: String, entry: IndexEntry, good: [UInt8]
    }

    static func damagedWindows(_ s: Scratch) throws -> DamagedWindows {
        let (blob, big) = try layer(s)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        _ = try cache.index(blob)
        let index = try #require(cache.load(digestHex: blob.digestHex, verify: false))
        let path = cache.indexPath(digestHex: blob.digestHex)
        let e = try LayerIndex(path: path).entry(2)   // entries are read from a full open (a merged tree in a mount)
        let good = try FileIO.readAll(path)
        let windows = good.withUnsafeBytes { IndexFormat.windows.offset(in: $0) }
        let windowsLength = good.withUnsafeBytes { IndexFormat.windows.count(in: $0) }
        #expect(windowsLength > 0)
        for at in stride(from: windows, to: windows + windowsLength, by: 4096) { try flip(path, at: at) }
        return DamagedWindows(blob: blob, big: big, cache: cache, index: index, path: path, entry: e, good: good)
    }

    @Test func damagedWindowIsRebuiltWhileServing() throws {
        let s = Scratch()
        let d = try Self.damagedWindows(s)
        let (blob, big, cache, index, path, e, good) = (d.blob, d.big, d.cache, d.index, d.path, d.entry, d.good)
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: cache.dataPath(digestHex: blob.digestHex), indexCache: cache)
        var whole = [UInt8](repeating: 0, count: big.count)
        try whole.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) }
        let same = whole == big
        #expect(same)
        #expect(data.repairs == 1)
        let restored = try FileIO.readAll(path) == good
        #expect(restored)
    }

    @Test func damagedWindowWithoutCacheFailsTheReadAndRemovesTheIndex() throws {
        let s = Scratch()
        let d = try Self.damagedWindows(s)
        let (blob, big, cache, index, path, e) = (d.blob, d.big, d.cache, d.index, d.path, d.entry)
        let data = try LayerData(index: index, blob: blob, number: 0, cache: SpanCache(capacity: 16 << 20),
                                 copyPath: cache.dataPath(digestHex: blob.digestHex))
        var whole = [UInt8](repeating: 0, count: big.count)
        #expect(throws: IndexDamage.self) { try whole.withUnsafeMutableBytes { try data.copy(offset: e.dataOffset, into: $0) } }
        #expect(!FileIO.exists(path))
    }
}
