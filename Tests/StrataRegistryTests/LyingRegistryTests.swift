import StrataHash
import StrataOCI
import StrataRegistry
import StrataTestSupport
import Testing

/// A registry that lies (through the fault-injecting proxy) gets a clear error or a retry,
/// never a hang past the timeout and never wrong bytes.
@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct LyingRegistryTests {
    struct Setup {
        let fixture: RegistryFixture
        let proxy: RegistryProxy
        let client: RegistryClient
        let layer: Descriptor
        let blob: [UInt8]

        init(auth: TestRegistry.Auth = .none, creds: String? = nil, retries: Int = 2, timeout: Double = 10) throws {
            fixture = auth == .none ? try RegistryFixture.shared() : try RegistryFixture(auth: auth)
            proxy = try RegistryProxy(fixture.registry)
            var options = RegistryFixture.options(creds: creds)
            options.retries = retries
            options.timeout = timeout
            client = try RegistryClient(host: proxy.host, repository: "strata/app", options: options)
            (layer, blob) = try fixture.bigLayer()
        }

        func expected(_ range: Range<Int>) -> [UInt8] { Array(blob[range]) }
    }

    /// Faults that a retry cures when they happen once, and that end in a clear error of the
    /// given kind when they persist.
    @Test(arguments: [
        (RegistryProxy.Fault.wrongLength, [RegistryError.Kind.badLength, .transport]),
        (.shortLength, [.badLength]),
        (.truncate, [.badLength, .transport]),
        (.wrongRange, [.badRange]),
        (.error, [.server]),
        (.down, [.transport]),
    ])
    func rangedReadsRetryOrFail(fault: RegistryProxy.Fault, kinds: [RegistryError.Kind]) throws {
        let s = try Setup()
        // Once: the retry gets the right bytes.
        try s.proxy.inject(fault, count: 1)
        #expect(try s.client.blob(s.layer.digest, range: 100..<200_100) == s.expected(100..<200_100))
        // (A closed connection is retried by URLSession itself, so it may not count.)
        if fault != .down { #expect(s.client.statistics.retries >= 1) }
        // Always: an error naming the blob, never bytes.
        try s.proxy.inject(fault)
        let e = try #require(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 100..<200_100) }
        #expect(kinds.contains(e.kind), "\(e)")
        #expect(e.description.contains(s.layer.digest.description))
        #expect(e.description.contains(s.proxy.host))
        #expect(!e.description.contains("\n"))
        // Back up: reads work again.
        try s.proxy.reset()
        #expect(try s.client.blob(s.layer.digest, range: 0..<10) == s.expected(0..<10))
    }

    @Test(arguments: [RegistryProxy.Fault.wrongLength, .shortLength, .truncate, .corrupt, .error, .down])
    func manifestReadsRetryOrFail(fault: RegistryProxy.Fault) throws {
        let s = try Setup()
        let digest = s.fixture.manifest.digest
        try s.proxy.inject(fault, match: "/manifests/", count: 1)
        #expect(try s.client.manifest("v1").digest == digest)
        try s.proxy.inject(fault, match: "/manifests/")
        let e = try #require(throws: RegistryError.self) { try s.client.manifest(digest.description) }
        #expect([.badLength, .badDigest, .transport, .server].contains(e.kind), "\(e)")
        #expect(e.description.contains("manifest \(digest)"))
        try s.proxy.reset()
        #expect(try s.client.manifest(digest.description).digest == digest)
    }

    @Test func errorsFromServerPersistingNameTheStatus() throws {
        let s = try Setup()
        try s.proxy.inject(.error, match: "/manifests/")
        let e = try #require(throws: RegistryError.self) { try s.client.manifest("v1") }
        #expect(e.kind == .server)
        #expect(e.status == 503)
        #expect(e.description.contains("503"))
        #expect(e.description.contains("manifest v1"))
    }

    @Test func ignoredRangeIsNoRangeSupportAndStreamingFallsBack() throws {
        let s = try Setup()
        try s.proxy.inject(.ignoreRange)
        let e = try #require(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 0..<100) }
        #expect(e.kind == .noRangeSupport)
        #expect(e.description.contains("ignores Range"))
        #expect(!s.client.hostSupportsRanges)
        // Remembered for the host: the next ranged read fails without a request.
        let before = try s.proxy.statistics().requests
        #expect(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 0..<100) }
        #expect(try s.proxy.statistics().requests == before)
        // Streaming still works: one whole GET, the first `offset` bytes skipped.
        var received: [UInt8] = []
        try s.client.streamBlob(s.layer.digest, from: 1234) { received.append(contentsOf: $0) }
        #expect(received == s.expected(1234..<s.blob.count))
    }

    @Test func corruptManifestIsRefusedByDigest() throws {
        let s = try Setup()
        try s.proxy.inject(.corrupt, match: "/manifests/")
        let byDigest = try #require(throws: RegistryError.self) { try s.client.manifest(s.fixture.manifest.digest.description) }
        #expect(byDigest.kind == .badDigest)
        #expect(byDigest.description.contains(s.fixture.manifest.digest.description))
        // By tag, the registry's Docker-Content-Digest no longer matches the bytes.
        let byTag = try #require(throws: RegistryError.self) { try s.client.manifest("v1") }
        #expect(byTag.kind == .badDigest)
        // Once only: the retry gets the real manifest.
        try s.proxy.inject(.corrupt, match: "/manifests/", count: 1)
        #expect(try s.client.manifest(s.fixture.manifest.digest.description).digest == s.fixture.manifest.digest)
    }

    @Test func manifestDigestMismatchWithReferenceIsRefused() throws {
        // A digest reference whose manifest the registry serves differently: resolve refuses it.
        let s = try Setup()
        try s.proxy.inject(.corrupt, match: "/manifests/")
        let ref = try #require(try RegistryReference.parse(s.proxy.reference("strata/app@\(s.fixture.manifest.digest)")))
        let e = try #require(throws: RegistryError.self) { try RemoteImage.resolve(ref, client: s.client, platform: nil) }
        #expect(e.kind == .badDigest)
    }

    @Test func corruptConfigIsRefused() throws {
        let s = try Setup()
        let image = try ImageResolver.resolve(reference: s.fixture.builder.reference("v1"))
        try s.proxy.inject(.corrupt, match: image.configDescriptor.digest.hex)
        let ref = try #require(try RegistryReference.parse(s.proxy.reference("strata/app:v1")))
        let e = try #require(throws: RegistryError.self) { try RemoteImage.resolve(ref, client: s.client, platform: nil) }
        #expect(e.kind == .badDigest)
        #expect(e.description.contains(image.configDescriptor.digest.description))
    }

    @Test func slowLorisTimesOut() throws {
        let s = try Setup(retries: 1, timeout: 1)
        try s.proxy.inject(.slow, delay: 0.2)
        let e = try #require(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 0..<100_000) }
        #expect(e.kind == .timeout)
        #expect(e.description.contains("too slow") || e.description.contains("no data"))
        try s.proxy.reset()
        #expect(try s.client.blob(s.layer.digest, range: 0..<10) == s.expected(0..<10))
    }

    @Test func silentServerTimesOut() throws {
        let s = try Setup(retries: 0, timeout: 1)
        _ = try s.client.manifest("v1")   // connected and authenticated before the silence
        try s.proxy.inject(.stall, delay: 30)
        let e = try #require(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 0..<100) }
        #expect(e.kind == .timeout)
        #expect(e.description.contains("no data for 1 s"))
        try s.proxy.reset()
    }

    @Test func streamingSurvivesDroppedChunks() throws {
        let s = try Setup()
        var options = RegistryFixture.options()
        options.streamChunkSize = 200_000
        let client = try RegistryClient(host: s.proxy.host, repository: "strata/app", options: options)
        try s.proxy.inject(.truncate, count: 2)
        var received: [UInt8] = []
        try client.streamBlob(s.layer.digest, from: 0) { received.append(contentsOf: $0) }
        #expect(received == s.blob)
        #expect(client.statistics.retries >= 1)
    }

    @Test func registryDownThenUp() throws {
        let s = try Setup()
        try s.proxy.inject(.down, match: "/v2/")
        let e = try #require(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 0..<10) }
        #expect(e.kind == .transport)
        try s.proxy.reset()
        #expect(try s.client.blob(s.layer.digest, range: 0..<10) == s.expected(0..<10))
    }

    @Test(arguments: [TestRegistry.Auth.basic(user: "u", password: "p"), .token(user: "u", password: "p")])
    func redirectToAnotherHostDropsAuthorization(auth: TestRegistry.Auth) throws {
        let s = try Setup(auth: auth, creds: "u:p")
        try s.proxy.inject(.redirect)
        #expect(try s.client.blob(s.layer.digest, range: 1000..<5000) == s.expected(1000..<5000))
        var streamed: [UInt8] = []
        try s.client.streamBlob(s.layer.digest, from: 0) { streamed.append(contentsOf: $0) }
        #expect(streamed == s.blob)
        let stats = try s.proxy.statistics()
        #expect(stats.redirectRequests >= 2)
        #expect(stats.redirectAuthorization == 0)
    }

    @Test func proxyCountsBytesServed() throws {
        let s = try Setup()
        _ = try s.client.blob(s.layer.digest, range: 0..<50_000)
        let stats = try s.proxy.statistics()
        #expect(stats.blobBytes == 50_000)
        #expect(stats.rangeRequests == 1)
        #expect(stats.log.contains { $0.contains("bytes=0-49999") && $0.contains("-> 206 50000") })
    }
}

@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct StatusMeaningTests {
    @Test func rateLimitIsRetriedThenNamed() throws {
        let s = try LyingRegistryTests.Setup()
        try s.proxy.inject(.rateLimit, count: 1)
        #expect(try s.client.blob(s.layer.digest, range: 0..<10) == s.expected(0..<10))
        try s.proxy.inject(.rateLimit)
        let e = try #require(throws: RegistryError.self) { try s.client.blob(s.layer.digest, range: 0..<10) }
        #expect(e.kind == .rateLimited)
        #expect(e.description.contains("rate limited"))
        #expect(e.description.contains("429"))
    }

    @Test func forbiddenIsNamed() throws {
        let s = try LyingRegistryTests.Setup()
        try s.proxy.inject(.forbidden, match: "/manifests/")
        let e = try #require(throws: RegistryError.self) { try s.client.manifest("v1") }
        #expect(e.kind == .denied)
        #expect(e.description.contains("access denied (403)"))
        #expect(e.description.contains("DENIED"))
        #expect(e.description.contains("manifest v1"))
    }
}
