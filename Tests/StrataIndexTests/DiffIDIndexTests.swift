import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataOCI
import StrataSystem
import StrataTar
@testable import StrataIndex

/// The hash of the uncompressed stream made on a second thread (issue 10, point 4).
struct BackgroundHasherTests {
    /// `mixed`: some pieces hashed on the caller's thread (`updateHere`, as the blob's digest
    /// is while every core is busy), in order with those handed to the thread.
    @Test(arguments: [0, 1, 4095, 1 << 20, (1 << 20) + 1, 5 * (1 << 20) + 3], [false, true])
    func sameDigestAsHashingInline(_ count: Int, mixed: Bool) {
        let data = content(count, seed: UInt64(count))
        let hasher = BackgroundHasher()
        // Uneven pieces, as a tar reader asks for them (a 512-byte header, then data).
        var offset = 0
        var piece = 1
        var number = 0
        data.withUnsafeBytes { all in
            while offset < count {
                let n = min(piece, count - offset)
                let bytes = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + n)])
                if mixed && number % 3 == 1 { hasher.updateHere(bytes) } else { hasher.update(bytes) }
                number += 1
                offset += n
                piece = piece * 7 % 300_007 + 512
            }
        }
        #expect(hasher.finalize() == SHA256Hasher.hash(data))
        #expect(hasher.finalize() == SHA256Hasher.hash(data))   // again: the same
    }

    /// Segments (span digests): each its own digest, whichever thread hashed or ended it.
    @Test(arguments: [false, true])
    func segmentsHaveTheirOwnDigests(mixed: Bool) {
        let sizes = [0, 1, 300_000, 1 << 20, (1 << 20) + 7, 3 << 20, 5, 0, 2_500_000]
        let segments = sizes.enumerated().map { content($1, seed: UInt64($0 + 1)) }
        let hasher = BackgroundHasher()
        for (i, segment) in segments.enumerated() {
            segment.withUnsafeBytes { all in
                var offset = 0
                var piece = 0
                while offset < all.count {
                    let n = min(100_000 + piece * 77_777 % 900_000, all.count - offset)
                    let bytes = UnsafeRawBufferPointer(rebasing: all[offset..<(offset + n)])
                    if mixed && piece % 2 == 1 { hasher.updateHere(bytes) } else { hasher.update(bytes) }
                    offset += n
                    piece += 1
                }
            }
            hasher.endSegment(here: mixed && i % 3 == 2)
        }
        #expect(hasher.segmentDigests() == segments.map { SHA256Hasher.hash($0) })
    }

    @Test func abandonedHasherEndsItsThread() {
        for _ in 0..<50 {
            let hasher = BackgroundHasher()
            hasher.update(UnsafeRawBufferPointer(start: nil, count: 0))
            [UInt8](repeating: 7, count: 3 << 20).withUnsafeBytes { hasher.update($0) }
        }   // each deinit joins its thread; a hang fails the test run
    }
}

struct DiffIDIndexTests {
    static let tar: [UInt8] = try! TarWriter.archive([
        (entry("dir", .directory), []),
        (entry("dir/file", size: 300_000), content(300_000, seed: 4)),
    ])
    static let diffID = Digest.sha256(of: tar)
    static let otherDiffID = Digest.sha256(of: Array("another tar".utf8))

    @Test(arguments: [LayerCompression.gzip, .zstd, .none])
    func indexingReturnsTheUncompressedDigest(_ c: LayerCompression) throws {
        let scratch = Scratch()
        var blob = try scratch.blob(compress(Self.tar, c), c)
        #expect(try IndexBuilder.buildVerified(blob).diffIDHex == Self.diffID.hex)
        blob.diffID = DiffIDClaim(number: 0, digest: Self.diffID)
        #expect(try IndexBuilder.buildVerified(blob).diffIDHex == Self.diffID.hex)
        blob.diffID = DiffIDClaim(number: 2, digest: Self.otherDiffID)
        let error = #expect(throws: IndexError.self) { try IndexBuilder.build(blob) }
        let message = "\(error.map { "\($0)" } ?? "")"
        #expect(message.contains("layer 2 sha256:\(blob.digestHex): diff_id mismatch"), "\(message)")
        #expect(message.contains(Self.otherDiffID.description) && message.contains(Self.diffID.description), "\(message)")
    }

    /// tar pads its output to whole 10 KiB records: the zeros after the end-of-archive blocks,
    /// which the tar reader never asks for, are part of the diff_id too.
    @Test(arguments: [LayerCompression.gzip, .zstd, .none])
    func bytesAfterTheEndOfArchiveCount(_ c: LayerCompression) throws {
        let scratch = Scratch()
        let padded = Self.tar + [UInt8](repeating: 0, count: 10240 - Self.tar.count % 10240 + 20480)
        var blob = try scratch.blob(compress(padded, c), c)
        blob.diffID = DiffIDClaim(number: 0, digest: Digest.sha256(of: padded))
        #expect(try IndexBuilder.buildVerified(blob).diffIDHex == Digest.sha256(of: padded).hex)
    }

    @Test func aMismatchLeavesNothingInTheCache() throws {
        let scratch = Scratch()
        let cache = try LayerCache(directory: scratch.path + "/cache")
        var blob = try scratch.blob(compress(Self.tar, .gzip), .gzip)
        blob.diffID = DiffIDClaim(number: 0, digest: Self.otherDiffID)
        #expect(throws: IndexError.self) { try cache.index(blob) }
        #expect(!FileIO.exists(cache.indexPath(digestHex: blob.digestHex)))
        #expect(!FileIO.exists(cache.diffIDPath(digestHex: blob.digestHex)))
        #expect(cache.verifiedDiffID(digestHex: blob.digestHex) == nil)
    }

    @Test func aCachedIndexChecksTheClaimAgainstTheVerifiedDiffID() throws {
        let scratch = Scratch()
        let cache = try LayerCache(directory: scratch.path + "/cache")
        var blob = try scratch.blob(compress(Self.tar, .zstd), .zstd)
        blob.diffID = DiffIDClaim(number: 0, digest: Self.diffID)
        #expect(try cache.index(blob).built)
        #expect(cache.verifiedDiffID(digestHex: blob.digestHex) == Self.diffID.hex)
        #expect(try cache.index(blob).built == false)   // same claim: warm
        var unclaimed = blob
        unclaimed.diffID = nil
        #expect(try cache.index(unclaimed).built == false)
        var liar = blob
        liar.diffID = DiffIDClaim(number: 1, digest: Self.otherDiffID)
        let error = #expect(throws: IndexError.self) { try cache.index(liar, verify: false) }
        #expect("\(error.map { "\($0)" } ?? "")".contains("diff_id mismatch"))
        // The honest index stays.
        #expect(try cache.index(blob, verify: false).built == false)
    }

    @Test func anIndexWithoutItsDiffIDRecordIsBuiltAgain() throws {
        let scratch = Scratch()
        let cache = try LayerCache(directory: scratch.path + "/cache")
        let blob = try scratch.blob(compress(Self.tar, .gzip), .gzip)
        #expect(try cache.index(blob).built)
        #expect(unlink(cache.diffIDPath(digestHex: blob.digestHex)) == 0)
        #expect(try cache.index(blob).built)
        #expect(cache.verifiedDiffID(digestHex: blob.digestHex) == Self.diffID.hex)
        // A damaged record is not believed either.
        try FileIO.writeAtomically(cache.diffIDPath(digestHex: blob.digestHex), Array("sha256:zz\n".utf8))
        #expect(cache.verifiedDiffID(digestHex: blob.digestHex) == nil)
        #expect(try cache.index(blob).built)
    }
}
