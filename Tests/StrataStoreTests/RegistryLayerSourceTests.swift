import StrataIndex
import StrataOCI
import StrataRegistry
import StrataRemote
import StrataStore
import StrataSystem
import StrataTestSupport
import Testing

/// The store's registry source without a mount: what it resolved is recorded, so a new
/// instance (a restarted store) answers every layer it answered before, after the tag moved
/// and with the registry gone; a layer no recorded image holds makes it resolve again.
@Suite(.serialized, .enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct RegistryLayerSourceTests {
    static func source(_ cache: LayerCache) -> RegistryLayerSource {
        var options = RegistryOptions()
        options.tlsVerify = false
        options.retries = 1
        let log = RemoteLog(error: { _ in }, warn: { _ in }, info: { _ in })
        return RegistryLayerSource(cache: cache, options: options, backgroundFetch: false, backgroundRate: nil, log: log)
    }

    static func image(_ temp: TempDirectory, _ name: String, _ content: String) throws -> ImageBuilder {
        let b = try ImageBuilder(layout: temp.child(name))
        try b.addLayer(entries: [Items.dir("etc"), Items.file("etc/which", content)])
        try b.write(tag: "v1")
        return b
    }

    @Test func recordedReferencesAnswerAfterARestartATagMoveAndWithoutTheRegistry() throws {
        let temp = try TempDirectory(prefix: "strata-test-store-")
        let registry = try TestRegistry()
        let first = try Self.image(temp, "a", "first\n"), second = try Self.image(temp, "b", "second\n")
        try registry.push(layout: first.reference("v1"), reference: "app:v1")
        let reference = try #require(try RegistryReference.parse(registry.reference("app:v1")))
        let cache = try LayerCache(directory: temp.child("cache"))
        let a = first.layers[0], b = second.layers[0]

        let running = Self.source(cache)
        let layer = try #require(try running.layer(reference: reference, digest: a.descriptor.digest))
        #expect(layer.diffID == a.diffID && layer.size == UInt64(a.descriptor.size) && layer.compression == .gzip)
        #expect(try running.layer(reference: reference, digest: Digest.sha256(of: [7])) == nil)
        let missing = try #require(try RegistryReference.parse(registry.reference("nothing:v1")))
        #expect(try running.layer(reference: missing, digest: a.descriptor.digest) == nil)

        // The tag moves; a restarted store still answers the old layer, and finds the new one.
        try registry.push(layout: second.reference("v1"), reference: "app:v1")
        let restarted = Self.source(cache)
        #expect(try restarted.layer(reference: reference, digest: a.descriptor.digest)?.diffID == a.diffID)
        #expect(try restarted.layer(reference: reference, digest: b.descriptor.digest)?.diffID == b.diffID)

        // The registry gone: both answer from the records; a reference never resolved cannot.
        registry.stop()
        let offline = Self.source(cache)
        #expect(try offline.layer(reference: reference, digest: a.descriptor.digest)?.diffID == a.diffID)
        #expect(try offline.layer(reference: reference, digest: b.descriptor.digest)?.diffID == b.diffID)
        let other = try #require(try RegistryReference.parse(registry.reference("other:v1")))
        #expect(throws: (any Error).self) { try offline.layer(reference: other, digest: a.descriptor.digest) }

        // A damaged record is not trusted: the reference resolves again (here: cannot).
        let records = StoreRecords(cacheDirectory: cache.directory)
        for name in FileIO.directoryEntries(records.directory + "/images") {
            try FileIO.writeAtomically(records.directory + "/images/" + name, Array("{}".utf8))
        }
        #expect(throws: (any Error).self) { try Self.source(cache).layer(reference: reference, digest: a.descriptor.digest) }
    }
}

/// The store replays an image's prefetch list as a mount does: the list published with the
/// image's index is fetched once the image is opened, before podman reads anything.
@Suite(.serialized, .enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct RegistryLayerSourcePrefetchTests {
    @Test func theImagesPrefetchListIsReplayedWhenItIsOpened() throws {
        let temp = try TempDirectory(prefix: "strata-test-store-")
        let registry = try TestRegistry()
        let b = try ImageBuilder(layout: temp.child("layout"))
        var entries = [Items.dir("data")]
        for i in 0..<4 { entries.append(Items.file(Array("data/n\(i)".utf8), Items.pseudoRandom(count: 2 << 20, seed: UInt64(400 + i)))) }
        try b.addLayer(entries: entries)
        try b.write(tag: "v1")
        try registry.push(layout: b.reference("v1"), reference: "app:v1")
        let reference = try #require(try RegistryReference.parse(registry.reference("app:v1")))
        var options = RegistryOptions()
        options.tlsVerify = false
        let client = try RegistryClient(reference, options: options)
        let image = try RemoteImage.resolve(reference, client: client, platform: nil)
        let layer = image.layers[0]

        // A publisher indexes the image, records a list of two ranges, and publishes both.
        let publisher = try LayerCache(directory: temp.child("publisher"))
        let local = try ImageResolver.resolve(reference: b.reference("v1"), platform: nil)
        _ = try publisher.index(LayerBlob(location: local.layerLocation(0), descriptor: layer.descriptor, format: layer.format,
                                          diffID: DiffIDClaim(number: 0, digest: layer.diffID)))
        let listed = [PrefetchList.Entry(layer: layer.descriptor.digest.description, offset: 0, length: 300_000),
                      PrefetchList.Entry(layer: layer.descriptor.digest.description, offset: 4_000_000, length: 200_000)]
        try PrefetchList(manifest: image.manifestDigest, ranges: listed).store(cache: publisher)
        _ = try IndexArtifacts.push(image: image, client: client, cache: publisher)

        // The store, from a fresh cache: opening the layer installs the index and replays the list.
        let cache = try LayerCache(directory: temp.child("cache"))
        let source = RegistryLayerSourceTests.source(cache)
        defer { source.stop() }
        let found = try #require(try source.layer(reference: reference, digest: layer.descriptor.digest))
        _ = try source.open(reference: reference, layer: found, spans: SpanCache(capacity: 1 << 20))
        // What the cache holds, as another process sees it (its record of present ranges).
        func present() throws -> LazyBlob {
            try LazyBlob(cache: cache, digestHex: layer.descriptor.digest.hex, size: UInt64(layer.descriptor.size), fetcher: NoFetcher())
        }
        // Under a loaded machine a fetch may fail and be tried again: wait for the replay's verdict.
        let replayed = Mounts.waitUntil(seconds: 120) {
            (try? present()).map { l in listed.allSatisfy { l.contains($0.range) } } ?? false || source.replays.failed > 0
        }
        let blob = try present()
        #expect(replayed && source.replays.failed == 0, "present: \(blob.presentRanges), replays: \(source.replays)")
        #expect(blob.presentBytes < UInt64(layer.descriptor.size) / 2, "present: \(blob.presentRanges)")
    }

    /// Reads what another instance fetched; fetches nothing itself.
    struct NoFetcher: BlobFetcher {
        func fetch(_ range: Range<UInt64>) throws -> [UInt8] { throw HarnessError("no fetch in this test") }
        func stream(from offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws { throw HarnessError("no stream") }
    }
}
