import Testing
import StrataIndex
import StrataOCI
import StrataRegistry
@testable import StrataRemote
import StrataSystem
import StrataTestSupport

/// A pull does not wait for one answer before asking what does not depend on it. Shown without
/// timing: the proxy holds one request until another has been answered, so the other request
/// comes first in its log only if it was asked while the held one was outstanding (a client
/// asking one after another sees the held request answered first, after the hold's limit).
@Suite("Index artifacts: requests that do not depend on each other overlap", .serialized)
struct IndexArtifactOverlapTests {
    typealias Setup = IndexArtifactLazyWindowTests.Setup

    static let enabled = TestRegistry.isAvailable
    /// The longest hold: under the clients' 20 s timeout, so a client that waits gets its
    /// answer (late) and the test fails on the order, not on a timeout.
    static let hold = 15.0
    /// Enough small files that the big layer's index has a part before its windows beyond the
    /// head the first request reads (as the indexes of real images do).
    static let smallFiles = 10_000

    /// A proxy started after the push (its log holds only what the pull asks) and a client on it.
    static func pullProxy(_ s: Setup) throws -> (RegistryProxy, RegistryClient) {
        let proxy = try RegistryProxy(s.registry)
        var options = RegistryOptions()
        options.tlsVerify = false
        options.timeout = 20
        return (proxy, try RegistryClient(host: proxy.host, repository: "test/lazy", options: options))
    }

    /// The position of the first log line containing `text`.
    static func first(_ log: [String], _ text: String) throws -> Int {
        try #require(log.firstIndex { $0.contains(text) }, "no request with \(text) in \(log)")
    }

    /// The image (with `smallFiles` in its big layer) pushed with its artifact, and the
    /// artifact's index blobs in layer order.
    static func published() throws -> (s: Setup, artifact: Digest, blobs: [Descriptor]) {
        let s = try Setup(smallFiles: smallFiles)
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        return (s, artifact, try indexBlobs(s, artifact))
    }

    /// The published index blobs of the image's layers, in layer order.
    static func indexBlobs(_ s: Setup, _ artifact: Digest) throws -> [Descriptor] {
        let m = try JSONCoding.decode(Manifest.self, from: s.client.manifest(artifact.description).bytes, what: "artifact")
        return try s.image.layers.map { layer in
            try #require(m.layers.first { $0.annotations?[IndexArtifactFormat.layerDigestAnnotation] == layer.descriptor.digest.description })
        }
    }

    @Test("the fallback tag is asked while the referrers API's answer is outstanding; the same requests as one after another",
          .enabled(if: enabled, TestRegistry.requirement))
    func referrersAndTagAtOnce() throws {
        let (s, artifact, blobs) = try Self.published()
        let (proxy, client) = try Self.pullProxy(s)
        let tag = "/manifests/\(IndexArtifactFormat.fallbackTag(s.image.manifestDigest))"
        try proxy.inject(.hold, match: "/referrers/", delay: Self.hold, until: tag)
        let fresh = try LayerCache(directory: s.temp.child("fresh"))
        let pulled = try #require(try IndexArtifacts.pull(image: s.image, client: client, cache: fresh))
        #expect(pulled.artifact == artifact)
        #expect(Set(pulled.layers) == Set(s.image.layers.map(\.descriptor.digest.hex)))
        let log = try proxy.statistics().log
        #expect(try Self.first(log, tag) < Self.first(log, "/referrers/"), "\(log)")
        // What is asked is what a pull one request after another asks: the API (404 here), the
        // tag, the artifact, the small index whole, the big one's parts before and after the
        // windows (those not fetched), placed by its descriptor's annotation.
        #expect(log.filter { $0.contains("/referrers/") }.count == 1)
        #expect(log.filter { $0.contains(tag) }.count == 1)
        #expect(log.filter { $0.contains("/manifests/\(artifact)") }.count == 1)
        #expect(log.filter { $0.contains("/blobs/\(blobs[0].digest)") }.count == 1)
        let big = log.filter { $0.contains("/blobs/\(blobs[1].digest)") }
        #expect(big.count == 2 && Set(big).count == 2, "\(big)")
        #expect(log.filter { !$0.hasPrefix("GET /v2/ ") }.count == 6, "\(log)")   // and the client's /v2/ ping
    }

    @Test("the artifact's blobs are fetched at once, and a lazy index's parts before and after its windows",
          .enabled(if: enabled, TestRegistry.requirement))
    func blobsAndPartsAtOnce() throws {
        let (s, _, blobs) = try Self.published()
        let section = try #require(IndexWindows.section(header: s.indexBytes(s.cache, s.bigHex)))
        let size = UInt64(blobs[1].size)
        try #require(section.lowerBound > IndexArtifacts.headLength && section.upperBound < size,
                     "the big index has parts before (\(section)) and after (size \(size)) its windows")

        // The second layer's index blob is answered while the first one's is held.
        let (proxy, client) = try Self.pullProxy(s)
        try proxy.inject(.hold, match: "/blobs/\(blobs[0].digest)", delay: Self.hold, until: "/blobs/\(blobs[1].digest)")
        let fresh = try LayerCache(directory: s.temp.child("fresh"))
        _ = try #require(try IndexArtifacts.pull(image: s.image, client: client, cache: fresh))
        let log = try proxy.statistics().log
        #expect(try Self.first(log, "/blobs/\(blobs[1].digest)") < Self.first(log, "/blobs/\(blobs[0].digest)"), "\(log)")

        // The part after the windows is answered while the part before them is held.
        let (second, client2) = try Self.pullProxy(s)
        let before = "/blobs/\(blobs[1].digest) bytes=0-"
        let after = "/blobs/\(blobs[1].digest) bytes=\(section.upperBound)-"
        try second.inject(.hold, match: before, delay: Self.hold, until: after)
        let other = try LayerCache(directory: s.temp.child("other"))
        _ = try #require(try IndexArtifacts.pull(image: s.image, client: client2, cache: other))
        let log2 = try second.statistics().log
        #expect(try Self.first(log2, after) < Self.first(log2, before), "\(log2)")
        // Installed as one after another would: every byte but the windows as published.
        let honest = try s.indexBytes(s.cache, s.bigHex), installed = try s.indexBytes(other, s.bigHex)
        let (lower, upper) = (Int(section.lowerBound), Int(section.upperBound))
        #expect(installed.count == honest.count && installed[..<lower] == honest[..<lower] && installed[upper...] == honest[upper...])
        try IndexArtifacts.confirm(layerDigestHex: s.bigHex, blob: s.blobs[1], cache: other)
        #expect(try s.indexBytes(other, s.bigHex) == honest)
    }
}
