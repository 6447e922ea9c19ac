import Testing
import Glibc
import StrataOCI
import StrataSeekable
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataIndex

/// Issue 12 (trust): a local layer indexed from its TOC is checked against its tar stream
/// (`TOCStreamCheck`, `LocalTOCCheck`): a TOC entry the stream does not hold as given, or a
/// diff_id other than the config's, fails the layer (its reads throw, its index leaves the
/// cache); an honest layer gets its diff_id recorded and is not checked again.
@Suite struct TOCStreamCheckTests {
    static let data = Items.pseudoRandom(count: 150_000, seed: 9)
    static let items: [TarItem] = [Items.dir("d"), Items.file(Array("d/f".utf8), data), Items.file("d/g", "g\n")]

    /// The blob in a file under `temp`, as a local layer of the given (claimed) diff_id.
    static func layer(_ temp: TempDirectory, _ seekable: SeekableBlob, diffID: Digest? = nil) throws -> LayerBlob {
        let hex = Digest.sha256(of: seekable.blob).hex
        let path = temp.child("blob-\(hex)")
        try FileIO.writeAtomically(path, seekable.blob)
        var blob = LayerBlob(path: path, digestHex: hex, size: UInt64(seekable.blob.count),
                             compression: seekable.mediaType == MediaType.ociLayerZstd ? .zstd : .gzip,
                             diffID: DiffIDClaim(number: 0, digest: diffID ?? seekable.diffID))
        blob.annotations = seekable.annotations
        return blob
    }

    static func lyingMode(_ format: TableOfContents.Format) throws -> SeekableBlob {
        switch format {
        case .estargz:
            var b = try SeekableFixture.estargz(items) { toc in
                if let i = toc.entries.firstIndex(where: { $0.name == "d/g" }) { toc.entries[i].mode = 0o600 }
            }
            b.annotations[EStargz.uncompressedSizeAnnotation] = nil
            return b
        case .zstdChunked:
            return try SeekableFixture.zstdChunked(items) { toc in
                if let i = toc.entries.firstIndex(where: { $0.name == "d/g" }) { toc.entries[i].mode = 0o600 }
            }
        }
    }

    static func honest(_ format: TableOfContents.Format) throws -> SeekableBlob {
        format == .estargz ? try SeekableFixture.estargz(items) : try SeekableFixture.zstdChunked(items)
    }

    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func checkNowRefusesALieAndRecordsAnHonestDiffID(_ format: TableOfContents.Format) throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        // A mode the stream does not have.
        let liar = try Self.layer(temp, try Self.lyingMode(format))
        let (lyingIndex, _) = try cache.index(liar)
        #expect(lyingIndex.contentSpans)
        let lie = #expect(throws: IndexError.self) { try LocalTOCCheck.checkNow(liar, index: lyingIndex, cache: cache) }
        #expect(lie.map { "\($0)".contains("\(liar.name): its TOC does not match its tar stream: entry 'd/g' differs") } == true, "\(String(describing: lie))")
        #expect(!FileIO.exists(cache.indexPath(digestHex: liar.digestHex)) && cache.verifiedDiffID(digestHex: liar.digestHex) == nil)
        // An honest TOC, but the config claims another diff_id.
        let seekable = try Self.honest(format)
        let wrongClaim = try Self.layer(temp, seekable, diffID: Digest.sha256(of: Array("other".utf8)))
        let (index, _) = try cache.index(wrongClaim)
        let mismatch = #expect(throws: IndexError.self) { try LocalTOCCheck.checkNow(wrongClaim, index: index, cache: cache) }
        #expect(mismatch.map { "\($0)".contains("diff_id mismatch") } == true)
        #expect(!FileIO.exists(cache.indexPath(digestHex: wrongClaim.digestHex)))
        // The honest layer as its config claims it: checked once, then not again.
        let good = try Self.layer(temp, seekable)
        let (goodIndex, _) = try cache.index(good)
        #expect(try LocalTOCCheck.checkNow(good, index: goodIndex, cache: cache))
        #expect(cache.verifiedDiffID(digestHex: good.digestHex) == seekable.diffID.hex)
        let (again, built) = try cache.index(good)
        #expect(!built && again.contentSpans)
        #expect(try !LocalTOCCheck.checkNow(good, index: again, cache: cache))
    }

    /// The background runner: a lying layer's reads throw from then on and its index leaves the
    /// cache; the honest one beside it is verified and reads on.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func backgroundCheckFailsOnlyTheLyingLayer(_ format: TableOfContents.Format) throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let blobs = [try Self.layer(temp, try Self.honest(format)), try Self.layer(temp, try Self.lyingMode(format))]
        let spans = SpanCache(capacity: 16 << 20)
        let layers = try blobs.enumerated().map { i, blob in
            try LayerData(index: try cache.index(blob, verify: false).index, blob: blob, number: i, cache: spans,
                          copyPath: cache.dataPath(digestHex: blob.digestHex), indexCache: cache)
        }
        let errors = Locked<[String]>([])
        let check = LocalTOCCheck(layers: layers, cache: cache, enabled: true,
                                  error: { message in errors.withLock { $0.append(message) } }, info: { _ in })
        #expect(check.state(0).state == .pending && check.state(1).state == .pending)
        check.start()
        defer { check.stop() }
        let done = Mounts.waitUntil(seconds: 60) { [.verified, .failed].contains(check.state(1).state) && check.state(0).state == .verified }
        #expect(done, "\(check.state(0)) \(check.state(1))")
        #expect(check.state(1).state == .failed)
        #expect(layers[1].failureMessage?.contains("its TOC does not match its tar stream") == true)
        #expect(throws: IndexError.self) { try layers[1].read(offset: 0, count: 512) { _ in } }
        var first: [UInt8] = []
        try layers[0].read(offset: 0, count: 512) { first = Array($0) }
        #expect(first.count == 512)
        #expect(!FileIO.exists(cache.indexPath(digestHex: blobs[1].digestHex)))
        #expect(cache.verifiedDiffID(digestHex: blobs[0].digestHex) != nil)
        let logged = errors.withLock { $0 }
        #expect(logged.count == 1 && logged[0].hasPrefix("\(blobs[1].name): verification failed"), "\(logged)")
        // Off: nothing to check, nothing started.
        let off = LocalTOCCheck(layers: layers, cache: cache, enabled: false, error: { _ in }, info: { _ in })
        #expect(off.state(0).state == .notNeeded && off.state(1).state == .off && !off.hasWork)
    }

    /// A check that cannot run (here: its scratch index cannot be made in the cache) is no
    /// verdict: the layer is neither failed nor dropped, and stays unchecked for a later mount.
    @Test func aCheckThatCannotRunFailsNothing() throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let blob = try Self.layer(temp, try Self.honest(.estargz))
        let (index, _) = try cache.index(blob)
        // The scratch file's name, taken by a directory: open(O_RDWR|O_CREAT) fails with EISDIR.
        let scratch = cache.indexPath(digestHex: blob.digestHex) + ".stream-check.\(getpid())"
        try FileIO.makeDirectories(scratch)
        defer { rmdir(scratch) }
        let error = #expect(throws: TOCStreamCheck.Unavailable.self) { try LocalTOCCheck.checkNow(blob, index: index, cache: cache) }
        #expect(error?.cause.code == EISDIR, "\(String(describing: error))")
        #expect(FileIO.exists(cache.indexPath(digestHex: blob.digestHex)) && cache.verifiedDiffID(digestHex: blob.digestHex) == nil)

        let spans = SpanCache(capacity: 16 << 20)
        let layer = try LayerData(index: index, blob: blob, number: 0, cache: spans,
                                  copyPath: cache.dataPath(digestHex: blob.digestHex), indexCache: cache)
        let errors = Locked<[String]>([])
        let check = LocalTOCCheck(layers: [layer], cache: cache, enabled: true,
                                  error: { message in errors.withLock { $0.append(message) } }, info: { _ in })
        check.start()
        defer { check.stop() }
        #expect(Mounts.waitUntil(seconds: 60) { !errors.withLock { $0.isEmpty } })
        #expect(check.state(0).state == .pending && check.state(0).error != nil)
        #expect(layer.failureMessage == nil)
        try layer.read(offset: 0, count: 512) { #expect($0.count == 512) }
        #expect(FileIO.exists(cache.indexPath(digestHex: blob.digestHex)))
        #expect(errors.withLock { $0 }.first?.contains("could not be checked") == true)
    }
}
