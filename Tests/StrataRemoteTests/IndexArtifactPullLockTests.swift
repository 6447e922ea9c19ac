import Foundation
import Testing
import StrataIndex
import StrataOCI
import StrataRegistry
@testable import StrataRemote
import StrataSystem
import StrataTestSupport

/// `strata bundle` looks for the image's index artifact while its mount's daemon starts
/// (`RemoteLayers.pullIndexesAhead`); the mount, on the same cache, waits for that pull and
/// uses what it installed instead of asking the registry again.
@Suite("Index artifacts: one pull per cache at a time", .serialized)
struct IndexArtifactPullLockTests {
    typealias Setup = IndexArtifactLazyWindowTests.Setup
    static let enabled = TestRegistry.isAvailable

    @Test("a mount's index step waits for a pull under way in the cache and uses its indexes",
          .enabled(if: enabled, TestRegistry.requirement))
    func mountWaitsForThePullUnderWay() throws {
        let s = try Setup()
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        let (proxy, client) = try IndexArtifactOverlapTests.pullProxy(s)
        let fresh = try LayerCache(directory: s.temp.child("fresh"))
        // The image's manifest in the cache, as resolving it leaves it: the lock is taken on it.
        let manifestPath = ManifestStore(cacheDirectory: fresh.directory).path(s.image.manifestDigest)
        try FileIO.makeDirectories(String(manifestPath[..<manifestPath.lastIndex(of: "/")!]))
        try FileIO.writeAtomically(manifestPath, client.manifest(s.image.manifestDigest.description).bytes)
        // The first pull's artifact manifest is held for a while: the mount comes meanwhile.
        try proxy.inject(.hold, match: "/manifests/\(artifact)", count: 1, delay: 3, until: "never answered")
        let ahead = DispatchSemaphore(value: 0)
        let image = s.image
        Thread {
            RemoteLayers.pullIndexesAhead(image: image, client: client, cache: fresh)
            ahead.signal()
        }.start()
        #expect(Mounts.waitUntil(seconds: 30) { ((try? proxy.statistics().log) ?? []).contains { $0.contains("/referrers/") } })
        let log = RemoteLog(error: { _ in }, warn: { _ in }, info: { _ in })
        let layers = try RemoteLayers(image: s.image, client: client, cache: fresh, log: log)
        try layers.index()
        ahead.wait()
        #expect(layers.layers.allSatisfy { $0.indexSource == .artifact }, "\(layers.layers.map(\.indexSource))")
        let requests = try proxy.statistics().log
        #expect(requests.filter { $0.contains("/manifests/\(artifact)") }.count == 1, "\(requests)")
        #expect(requests.filter { $0.contains("/referrers/") }.count == 1, "\(requests)")
        #expect(layers.layers.allSatisfy { fresh.load(digestHex: $0.digest.hex, verify: false) != nil })
    }
}
