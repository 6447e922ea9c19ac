import Testing
import StrataCodec
import StrataHash
import StrataIndex
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataRemote

/// The background check of a fetched blob indexes it into scratch files of the cache.
@Suite struct BackgroundCheckTests {
    func blob(_ temp: TempDirectory, _ bytes: [UInt8]) throws -> LayerBlob {
        let path = temp.child("blob")
        try FileIO.writeAtomically(path, bytes)
        return LayerBlob(path: path, digestHex: SHA256Hasher.hex(of: bytes), size: UInt64(bytes.count), compression: .gzip)
    }

    @Test func aGoodBlobPassesAndLeavesNothingInTheCache() throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let data = Items.pseudoRandom(count: 3 << 20, seed: 5)
        let tar = try TarWriter.archive([(TarEntry(path: Array("data".utf8), type: .regular, mode: 0o644, uid: 0, gid: 0,
                                                   size: UInt64(data.count), mtimeSeconds: 0, mtimeNanoseconds: 0,
                                                   linkTarget: []), data)])
        // A scratch file takes bytes and gives them back, and has no name.
        let scratch = try cache.scratchFile()
        try [UInt8]([1, 2, 3]).withUnsafeBytes { try scratch.writeAll($0, at: 4096) }
        var back = [UInt8](repeating: 0, count: 3)
        #expect(try back.withUnsafeMutableBytes { try scratch.readFully(into: $0, at: 4096) } == 3 && back == [1, 2, 3])
        #expect(FileIO.directoryEntries(temp.child("cache/index/sha256")).isEmpty)
        scratch.close()
        try BackgroundFetch.check(try blob(temp, Gzip.compress(tar)), cache: cache)
        #expect(FileIO.directoryEntries(temp.child("cache/index/sha256")).isEmpty, "scratch files have no names")
    }

    @Test func aCorruptBlobFails() throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let tar = try TarWriter.archive([(TarEntry(path: Array("a".utf8), type: .regular, mode: 0o644, uid: 0, gid: 0, size: 3,
                                                   mtimeSeconds: 0, mtimeNanoseconds: 0, linkTarget: []), [1, 2, 3])])
        var bytes = Gzip.compress(tar)
        let good = try blob(temp, bytes)
        bytes[bytes.count / 2] ^= 0x40
        try FileIO.writeAtomically(good.path, bytes)   // the digest claimed is the good one's
        #expect(throws: IndexError.self) { try BackgroundFetch.check(good, cache: cache) }
    }
}
