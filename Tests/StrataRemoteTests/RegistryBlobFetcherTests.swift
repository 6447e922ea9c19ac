import StrataOCI
import StrataRegistry
import StrataSystem
import StrataTestSupport
import Testing
@testable import StrataRemote

/// The lazy blobs' fetcher over the registry client (a real docker-registry, and the proxy
/// to make it ignore Range).
@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct RegistryBlobFetcherTests {
    static let blob = Items.pseudoRandom(count: 3 << 20, seed: 7)

    func client(_ host: String) throws -> RegistryClient {
        var options = RegistryOptions()
        options.tlsVerify = false
        options.retries = 1
        return try RegistryClient(host: host, repository: "blobs", options: options)
    }

    @Test func rangesAndStreamsAreTheBlobsBytes() throws {
        let registry = try TestRegistry()
        let proxy = try RegistryProxy(registry)
        let pushed = try client(registry.host).pushBlob(Self.blob)
        let fetcher = RegistryBlobFetcher(client: try client(proxy.host), digest: pushed.digest)
        #expect(try fetcher.fetch(1000..<300_000) == Array(Self.blob[1000..<300_000]))
        // The bytes of a range as they come: growing prefixes of it, the last one whole.
        var prefixes: [Int] = []
        var prefixesMatch = true
        let whole = try fetcher.fetch(0..<(2 << 20)) { b in
            prefixes.append(b.count)
            prefixesMatch = prefixesMatch && b.elementsEqual(Self.blob[..<b.count])
        }
        #expect(whole == Array(Self.blob[..<(2 << 20)]) && prefixesMatch)
        #expect(prefixes.count > 1 && prefixes == prefixes.sorted() && prefixes.last == 2 << 20)
        var streamed: [UInt8] = []
        try fetcher.stream(from: 2 << 20) { streamed += $0 }
        #expect(streamed == Array(Self.blob[(2 << 20)...]))

        // A host that ignores Range: the bytes come from a stream of the whole blob.
        try proxy.inject(.ignoreRange)
        let plain = RegistryBlobFetcher(client: try client(proxy.host), digest: pushed.digest)
        #expect(try plain.fetch(2_000_000..<2_100_000) == Array(Self.blob[2_000_000..<2_100_000]))
        try proxy.reset()

        // A failed layer fetches nothing more.
        fetcher.fail("verification failed")
        #expect(throws: RemoteError.self) { try fetcher.fetch(0..<10) }
        #expect(throws: RemoteError.self) { try fetcher.stream(from: 0) { _ in } }
    }
}
