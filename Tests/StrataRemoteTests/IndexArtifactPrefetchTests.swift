#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataIndex
import StrataOCI
@testable import StrataRemote
import StrataSystem
import StrataTestSupport

/// The prefetch list: recorded from the blobs' demand order, replayed after a mount, merged.
@Suite("Index artifacts: prefetch list")
struct IndexArtifactPrefetchTests {
    /// A lazy blob stand-in: records what is prefetched; its demand order is set by the test.
    final class FakeBlob: PrefetchableBlob, @unchecked Sendable {
        let lock = Lock()
        var prefetched: [Range<UInt64>] = []
        var demanded: [Range<UInt64>] = []
        func prefetch(_ range: Range<UInt64>) throws { lock.withLock { prefetched.append(range) } }
        var demandOrder: [Range<UInt64>] { lock.withLock { demanded } }
        func demand(_ range: Range<UInt64>) { lock.withLock { demanded.append(range) } }
    }

    static func image(layers: [Digest]) -> ResolvedImage {
        let config = Descriptor(mediaType: MediaType.ociConfig, digest: Digest.sha256(of: [1]), size: 1)
        let descriptors = layers.map { Descriptor(mediaType: MediaType.ociLayerGzip, digest: $0, size: 1 << 30) }
        let manifest = Manifest(config: config, layers: descriptors)
        return ResolvedImage(layoutPath: "docker://example/app", manifestDescriptor: Descriptor(mediaType: MediaType.ociManifest, digest: Digest.sha256(of: [2]), size: 100),
                             manifest: manifest, manifestBytes: [], config: ImageConfig(architecture: "amd64", os: "linux", rootfs: .init(diffIDs: layers)), configBytes: [],
                             layers: descriptors.map { LayerDescriptor(descriptor: $0, format: .gzip, diffID: $0.digest) },
                             platform: Platform(os: "linux", architecture: "amd64"))
    }

    @Test("a mount records its first reads across layers; the next replays them, then adds only what it demanded anew")
    func recordReplayMerge() throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let l0 = Digest.sha256(of: [10]), l1 = Digest.sha256(of: [11])
        let image = Self.image(layers: [l0, l1])

        // First mount: no list; reads in layer 1, then layer 0.
        let a0 = FakeBlob(), a1 = FakeBlob()
        let first = PrefetchSession(image: image, cache: cache, blobs: [l0.hex: a0, l1.hex: a1], interval: 0.01)
        #expect(first.list == nil)
        first.start()
        a1.demand(1_000_000..<1_262_144)
        usleep(100_000)
        a0.demand(0..<262_144)
        a1.demand(5_000_000..<5_262_144)
        first.stop()
        #expect(a0.prefetched.isEmpty && a1.prefetched.isEmpty)
        let recorded = try #require(PrefetchList.load(cache: cache, manifest: image.manifestDigest))
        #expect(recorded.ranges.first == .init(layer: l1.description, offset: 1_000_000, length: 262_144))
        #expect(Set(recorded.ranges) == [
            .init(layer: l1.description, offset: 1_000_000, length: 262_144),
            .init(layer: l0.description, offset: 0, length: 262_144),
            .init(layer: l1.description, offset: 5_000_000, length: 262_144),
        ])

        // Second mount: the list is replayed (each range once); one new read is appended.
        let b0 = FakeBlob(), b1 = FakeBlob()
        let second = PrefetchSession(image: image, cache: cache, blobs: [l0.hex: b0, l1.hex: b1], interval: 0.01)
        second.start()
        b1.demand(9_000_000..<9_262_144)
        b1.demand(1_000_000..<1_100_000)   // inside a listed range: not added again
        var waited = 0
        while second.replayed.done < 3 && waited < 500 { usleep(10_000); waited += 1 }
        second.stop()
        #expect(second.replayed.done == 3)
        #expect(Set(b0.prefetched) == [0..<262_144])
        #expect(Set(b1.prefetched) == [1_000_000..<1_262_144, 5_000_000..<5_262_144])
        let merged = try #require(PrefetchList.load(cache: cache, manifest: image.manifestDigest))
        #expect(Array(merged.ranges.prefix(3)) == recorded.ranges)
        #expect(Array(merged.ranges.dropFirst(3)) == [.init(layer: l1.description, offset: 9_000_000, length: 262_144)])
    }

    @Test("a TOC's landmark range is fetched first, cut into 1 MiB pieces in order")
    func extraRangesAreCutIntoPieces() throws {
        let temp = try TempDirectory()
        let cache = try LayerCache(directory: temp.child("cache"))
        let l0 = Digest.sha256(of: [20])
        let blob = FakeBlob()
        let extra = PrefetchList.Entry(layer: l0.description, offset: 0, length: (5 << 19) + 7)   // 2.5 MiB + 7
        // One worker: the pieces are fetched in the order they come.
        let session = PrefetchSession(image: Self.image(layers: [l0]), cache: cache, blobs: [l0.hex: blob],
                                      interval: 0.01, workers: 1, extra: [extra])
        session.start()
        var waited = 0
        while session.replayed.done < 3 && waited < 500 { usleep(10_000); waited += 1 }
        session.stop()
        let fetched = blob.lock.withLock { blob.prefetched }
        let expected: [Range<UInt64>] = [0..<(1 << 20), (1 << 20)..<(2 << 20), (2 << 20)..<((5 << 19) + 7)]
        #expect(fetched == expected)
    }

    @Test("listed spans close together are replayed in one request; other layers, far ones and the size limit split them")
    func nearbySpansAreJoined() {
        typealias E = PrefetchList.Entry
        let a = "sha256:" + String(repeating: "a", count: 64), b = "sha256:" + String(repeating: "b", count: 64)
        let list = [E(layer: a, offset: 0, length: 100), E(layer: a, offset: 100, length: 50),   // touching
                    E(layer: a, offset: 1000, length: 10),                                      // within the gap
                    E(layer: b, offset: 1010, length: 10),                                      // another layer
                    E(layer: a, offset: 5000, length: 10),                                      // too far
                    E(layer: a, offset: 4000, length: 10),                                      // before: not joined
                    E(layer: a, offset: 4100, length: 3000)]                                    // over the limit
        let joined = PrefetchSession.coalesce(list, gap: 1000, limit: 2000)
        #expect(joined == [E(layer: a, offset: 0, length: 1010), E(layer: b, offset: 1010, length: 10),
                           E(layer: a, offset: 5000, length: 10), E(layer: a, offset: 4000, length: 10),
                           E(layer: a, offset: 4100, length: 3000)])
    }

    @Test("the replay goes through the list in parts, each in blob order with close ranges joined")
    func replayPlanKeepsOrderByParts() {
        typealias E = PrefetchList.Entry
        let a = "sha256:" + String(repeating: "a", count: 64)
        let mib: UInt64 = 1 << 20
        // Part one (2 MiB): read at 5, 0 and 1 MiB (0 and 1 MiB touch: one request). Part two: 9 MiB.
        let list = [E(layer: a, offset: 5 * mib, length: mib), E(layer: a, offset: 0, length: mib / 2),
                    E(layer: a, offset: mib / 2, length: mib / 2), E(layer: a, offset: 9 * mib, length: 10)]
        let ranges = PrefetchSession.plan(list, windows: nil).compactMap { w -> E? in
            if case .range(let e) = w { return e }
            return nil
        }
        #expect(ranges == [E(layer: a, offset: 0, length: mib), E(layer: a, offset: 5 * mib, length: mib),
                           E(layer: a, offset: 9 * mib, length: 10)])
    }

    @Test("a list from elsewhere is checked: bad ranges, digests or versions are refused")
    func decodeChecks() throws {
        let good = PrefetchList(manifest: Digest.sha256(of: [1]), ranges: [.init(layer: Digest.sha256(of: [2]).description, offset: 4, length: 8)])
        #expect(try PrefetchList.decode(try good.encoded(), what: "list") == good)
        let bad = [
            #"{"manifest":"sha256:xyz","ranges":[],"version":1}"#,
            #"{"manifest":"\#(Digest.sha256(of: [1]))","ranges":[{"layer":"\#(Digest.sha256(of: [2]))","offset":4,"length":0}],"version":1}"#,
            #"{"manifest":"\#(Digest.sha256(of: [1]))","ranges":[{"layer":"\#(Digest.sha256(of: [2]))","offset":18446744073709551615,"length":8}],"version":1}"#,
            #"{"manifest":"\#(Digest.sha256(of: [1]))","ranges":[],"version":2}"#,
        ]
        for text in bad {
            #expect(throws: (any Error).self) { try PrefetchList.decode(Array(text.utf8), what: "list") }
        }
    }
}
