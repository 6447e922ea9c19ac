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
