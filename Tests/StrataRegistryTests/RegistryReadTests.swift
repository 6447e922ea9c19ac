import StrataHash
import StrataOCI
import StrataRegistry
import StrataSystem
import StrataTestSupport
import Testing

@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct RegistryReadTests {
    @Test func manifestByTagAndByDigest() throws {
        let f = try RegistryFixture.shared()
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options())
        let byTag = try client.manifest("v1")
        #expect(byTag.digest == f.manifest.digest)
        #expect(byTag.mediaType == MediaType.ociManifest)
        #expect(byTag.bytes == (try FileIO.readAll(f.builder.blobPath(f.manifest.digest))))
        let byDigest = try client.manifest(f.manifest.digest.description)
        #expect(byDigest == byTag)
        #expect(client.statistics.requests == 2)   // no /v2/ ping: the two GETs only
    }

    @Test func manifestDescriptorByHead() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: RegistryFixture.options())
        let head = try #require(try client.manifestDescriptor("v1"))
        #expect(head.digest == f.manifest.digest)
        #expect(head.size == f.manifest.size)
        #expect(head.mediaType == MediaType.ociManifest)
        #expect(try client.manifestDescriptor(f.manifest.digest.description)?.digest == f.manifest.digest)
        #expect(try client.manifestDescriptor("no-such-tag") == nil)
        #expect(client.statistics.bytesReceived < UInt64(f.manifest.size))   // HEADs only
    }

    @Test func resolveGivesTheLayoutsImage() throws {
        let f = try RegistryFixture.shared()
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options())
        let image = try RemoteImage.resolve(ref, client: client, platform: nil)
        let local = try ImageResolver.resolve(reference: f.builder.reference("v1"))
        #expect(image.transport == .registry)
        #expect(image.layoutPath == f.reference)
        #expect(image.manifestDigest == local.manifestDigest)
        #expect(image.configBytes == local.configBytes)
        #expect(image.layers == local.layers)
    }

    /// A client sends no `/v2/` ping: resolving a tag is one manifest GET and one config GET.
    /// With a manifest store, what is named by digest comes from it (no request), a tag is
    /// still asked of the registry, and a kept file that is not what its name says is ignored.
    @Test func resolveWithAStoreAsksOnlyForTheTag() throws {
        let f = try RegistryFixture.shared()
        let temp = try TempDirectory()
        let ref = try #require(try RegistryReference.parse(f.reference))
        let store = ManifestStore(cacheDirectory: temp.path)
        let client = try RegistryClient(ref, options: RegistryFixture.options())
        let first = try RemoteImage.resolve(ref, client: client, platform: nil, store: store)
        #expect(client.statistics.requests == 2)   // manifest by tag, config
        let again = try RemoteImage.resolve(ref, client: client, platform: nil, store: store)
        #expect(client.statistics.requests == 3)   // the tag only
        #expect(again.manifestDigest == first.manifestDigest && again.configBytes == first.configBytes)

        var pinned = ref
        pinned.tag = nil
        pinned.digest = first.manifestDigest
        let byDigest = try RemoteImage.resolve(pinned, client: client, platform: nil, store: store)
        #expect(client.statistics.requests == 3)
        #expect(byDigest.layers == first.layers)

        try FileIO.writeAtomically(store.path(first.manifestDigest), Array("{\"schemaVersion\":2}".utf8))
        let repaired = try RemoteImage.resolve(pinned, client: client, platform: nil, store: store)
        #expect(client.statistics.requests == 4)
        #expect(repaired.layers == first.layers)
        #expect(store.manifest(first.manifestDigest) != nil)
    }

    @Test func unknownTagAndBlobAreClear404s() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: RegistryFixture.options())
        let e1 = try #require(throws: RegistryError.self) { try client.manifest("nope") }
        #expect(e1.kind == .notFound)
        #expect(e1.description.contains("manifest unknown"))
        #expect(e1.description.contains(f.registry.host))
        #expect(e1.description.contains("strata/app"))
        let missing = Digest.sha256(of: [1, 2, 3])
        let e2 = try #require(throws: RegistryError.self) { try client.blob(missing, range: 0..<2) }
        #expect(e2.kind == .notFound)
        #expect(e2.description.contains("blob unknown"))
        #expect(e2.description.contains(missing.description))
        #expect(try client.blobExists(missing) == false)
    }

    @Test func rangedReadsAreByteExact() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: RegistryFixture.options())
        let (layer, blob) = try f.bigLayer()
        let size = UInt64(blob.count)
        for range in [0..<1, 0..<4096, 1000..<300_000, (size - 17)..<size, 0..<size] {
            let bytes = try client.blob(layer.digest, range: range)
            #expect(bytes == Array(blob[Int(range.lowerBound)..<Int(range.upperBound)]), "\(range)")
        }
        #expect(try client.blobExists(layer.digest))
        #expect(try client.blobSize(layer.digest) == size)
        #expect(client.hostSupportsRanges)
    }

    @Test(arguments: [UInt64(0), 12_345])
    func streamBlobDeliversTheRestInOrder(from offset: UInt64) throws {
        let f = try RegistryFixture.shared()
        var options = RegistryFixture.options()
        options.streamChunkSize = 100_000   // several chunks for the 1.5 MB layer
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: options)
        let (layer, blob) = try f.bigLayer()
        var received: [UInt8] = []
        try client.streamBlob(layer.digest, from: offset) { received.append(contentsOf: $0) }
        #expect(received == Array(blob[Int(offset)...]))
        // From the very end: nothing, and no error.
        var none = 0
        let count: (UnsafeRawBufferPointer) throws -> Void = { none += $0.count }
        try client.streamBlob(layer.digest, from: UInt64(blob.count), count)   // the contract's positional form
        #expect(none == 0)
    }

    struct Stop: Error {}

    @Test func streamConsumerErrorsPassThroughUnretried() throws {
        let f = try RegistryFixture.shared()
        var options = RegistryFixture.options()
        options.streamChunkSize = 100_000
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: options)
        let (layer, _) = try f.bigLayer()
        var calls = 0
        #expect(throws: Stop.self) {
            try client.streamBlob(layer.digest, from: 0) { _ in
                calls += 1
                throw Stop()
            }
        }
        #expect(calls == 1)
        #expect(client.statistics.retries == 0)
    }

    @Test func wholeBlobIsVerified() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: RegistryFixture.options())
        let image = try ImageResolver.resolve(reference: f.builder.reference("v1"))
        let config = try client.blob(image.configDescriptor.digest, expectedSize: image.configDescriptor.size)
        #expect(config == image.configBytes)
    }

    @Test func referrersWithoutTheAPIIsNil() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: RegistryFixture.options())
        #expect(try client.referrers(f.manifest.digest, artifactType: "application/vnd.strata.index.v1+json") == nil)
        #expect(try client.referrers(f.manifest.digest, artifactType: nil) == nil)
    }

    @Test func pushBlobAndManifestThenReadBack() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/artifacts", options: RegistryFixture.options())
        let payload = Items.pseudoRandom(count: 70_000, seed: 3)
        var blob = try client.pushBlob(payload)
        #expect(blob.digest == Digest.sha256(of: payload))
        #expect(try client.blobExists(blob.digest))
        #expect(try client.blob(blob.digest, range: 10..<20) == Array(payload[10..<20]))
        // A second push of the same blob is a HEAD only.
        let before = client.statistics.requests
        _ = try client.pushBlob(payload)
        #expect(client.statistics.requests == before + 1)

        let emptyConfig: [UInt8] = Array("{}".utf8)
        var config = try client.pushBlob(emptyConfig)
        config.mediaType = "application/vnd.oci.empty.v1+json"
        blob.mediaType = "application/vnd.strata.test"
        let manifest = Manifest(artifactType: "application/vnd.strata.test", config: config, layers: [blob],
                                subject: f.manifest)
        let bytes = try JSONCoding.encode(manifest)
        let digest = try client.pushManifest(bytes, mediaType: MediaType.ociManifest, reference: "index-v1")
        #expect(digest == Digest.sha256(of: bytes))
        let back = try client.manifest("index-v1")
        #expect(back.bytes == bytes)
        #expect(back.digest == digest)
        #expect(try client.manifest(digest.description).bytes == bytes)
    }
}

@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct RegistryConnectionTests {
    @Test func unreachableRegistryIsATransportError() throws {
        var options = RegistryFixture.options()
        options.retries = 1
        // A port nothing listens on: the shared registry's helper gives a free one.
        let f = try RegistryFixture.shared()
        let port = try TestRegistry.freePort(helper: f.registry.helper)
        let client = try RegistryClient(host: "127.0.0.1:\(port)", repository: "strata/app", options: options)
        let e = try #require(throws: RegistryError.self) { try client.manifest("v1") }
        #expect(e.kind == .transport)
        #expect(e.description.contains("127.0.0.1:\(port)"))
        #expect(!e.description.contains("\n"))
    }

    @Test func httpsToAPlainHTTPRegistrySuggestsTlsVerifyFalse() throws {
        let f = try RegistryFixture.shared()
        var options = RegistryFixture.options()
        options.tlsVerify = true
        options.retries = 0
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: options)
        let e = try #require(throws: RegistryError.self) { try client.manifest("v1") }
        #expect(e.kind == .transport)
        #expect(e.description.contains("--tls-verify=false"))
    }
}
