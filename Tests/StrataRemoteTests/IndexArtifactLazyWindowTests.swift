import Testing
import StrataIndex
import StrataOCI
import StrataRegistry
@testable import StrataRemote
import StrataSystem
import StrataTestSupport

/// A published layer index whose windows section is large is installed without it, each
/// window fetched from the index blob when a decode (or the prefetch) needs it; confirmation
/// checks the rest byte for byte and the derived index against the published blob's digest.
@Suite("Index artifacts: windows fetched when used", .serialized)
struct IndexArtifactLazyWindowTests {
    /// An image whose second layer is 24 MiB of incompressible files (a 32 KiB window per
    /// checkpoint: a windows section well over the threshold), indexed in a publisher cache
    /// and pushed with its artifact; clients through a counting proxy.
    struct Setup {
        let temp: TempDirectory
        let registry: TestRegistry
        let proxy: RegistryProxy
        let layout: String
        let client: RegistryClient
        let image: ResolvedImage
        let blobs: [LayerBlob]
        let cache: LayerCache
        var bigHex: String { image.layers[1].descriptor.digest.hex }

        /// `smallFiles`: that many more small files in the second layer (enough of them put
        /// more than `IndexArtifacts.headLength` of its index before the windows section).
        init(smallFiles: Int = 0) throws {
            temp = try TempDirectory()
            registry = try TestRegistry()
            layout = temp.child("layout")
            let b = try ImageBuilder(layout: layout)
            try b.addLayer(entries: [Items.dir("etc"), Items.file("etc/os-release", "ID=strata-test\n")])
            var entries = [Items.dir("data")]
            for i in 0..<6 { entries.append(Items.file(Array("data/n\(i)".utf8), Items.pseudoRandom(count: 4 << 20, seed: UInt64(300 + i)))) }
            entries.append(Items.file("data/small", "small file\n"))
            for i in 0..<smallFiles { entries.append(Items.file(Array("data/s\(i)".utf8), Array("small file \(i)\n".utf8))) }
            try b.addLayer(entries: entries)
            try b.write(tag: "v1")
            try registry.push(layout: "\(layout):v1", reference: "test/lazy:v1")
            proxy = try RegistryProxy(registry)
            var options = RegistryOptions()
            options.tlsVerify = false
            options.timeout = 20
            client = try RegistryClient(host: proxy.host, repository: "test/lazy", options: options)
            guard let reference = try RegistryReference.parse(proxy.reference("test/lazy:v1")) else { throw HarnessError("not a registry reference") }
            image = try RemoteImage.resolve(reference, client: client, platform: nil)
            let local = try ImageResolver.resolve(reference: "\(layout):v1", platform: nil)
            blobs = local.layers.enumerated().map { i, layer in
                LayerBlob(location: local.layerLocation(i), descriptor: layer.descriptor, format: layer.format,
                          diffID: DiffIDClaim(number: i, digest: layer.diffID))
            }
            cache = try LayerCache(directory: temp.child("publisher"))
            for blob in blobs { _ = try cache.index(blob) }
        }

        func indexBytes(_ cache: LayerCache, _ hex: String) throws -> [UInt8] { try FileIO.readAll(cache.indexPath(digestHex: hex)) }

        /// The published index blob of the big layer in `artifact`.
        func indexBlob(_ artifact: Digest) throws -> Descriptor {
            let m = try JSONCoding.decode(Manifest.self, from: client.manifest(artifact.description).bytes, what: "artifact")
            return try #require(m.layers.first { $0.annotations?[IndexArtifactFormat.layerDigestAnnotation] == image.layers[1].descriptor.digest.description })
        }
    }

    /// A source that hands out fixed bytes (a registry answering with the wrong ones).
    struct FixedSource: IndexWindowSource {
        var bytes: UInt8
        var indexBlob: String { "sha256:fixed" }
        func indexBytes(_ range: Range<UInt64>) throws -> [UInt8] { [UInt8](repeating: bytes, count: Int(range.count)) }
    }

    static let enabled = TestRegistry.isAvailable

    @Test("a large windows section is not fetched at install; each window is fetched when decoded, checked and written in; confirm trusts it",
          .enabled(if: enabled, TestRegistry.requirement))
    func windowsFetchedWhenUsed() throws {
        let s = try Setup()
        let honest = try s.indexBytes(s.cache, s.bigHex)
        let section = try #require(IndexWindows.section(header: honest))
        #expect(section.count >= IndexArtifacts.lazyWindowsThreshold, "windows section \(section.count) bytes")
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        let blob = try s.indexBlob(artifact)

        let fresh = try LayerCache(directory: s.temp.child("fresh"))
        let before = try s.proxy.statistics()
        let pulled = try #require(try IndexArtifacts.pull(image: s.image, client: s.client, cache: fresh))
        let after = try s.proxy.statistics()
        #expect(pulled.layers.contains(s.bigHex))
        // The windows were not fetched: what the pull read of the blobs is less than the index
        // blobs by most of the windows section.
        let indexBytes = s.image.layers.map { (try? s.indexBytes(s.cache, $0.descriptor.digest.hex).count) ?? 0 }.reduce(0, +)
        let fetched = after.blobBytes - before.blobBytes
        #expect(fetched <= indexBytes - section.count + Int(IndexArtifacts.headLength), "fetched \(fetched) of \(indexBytes) index bytes")
        #expect(IndexArtifactTrust.lazyWindows(fresh, s.bigHex) == .init(indexBlob: blob.digest, size: blob.size))
        #expect(IndexArtifacts.isUntrusted(layerDigestHex: s.bigHex, cache: fresh))
        // Full size, every byte outside the windows as published; the windows a hole.
        let installed = try s.indexBytes(fresh, s.bigHex)
        let (lower, upper) = (Int(section.lowerBound), Int(section.upperBound))
        #expect(installed.count == honest.count)
        #expect(installed[..<lower] == honest[..<lower] && installed[upper...] == honest[upper...])
        #expect(installed[max(lower, Int(IndexArtifacts.headLength))..<upper].allSatisfy { $0 == 0 })

        // Without a source a missing window is damage (rebuilt from the blob, as for any index).
        let index = try #require(fresh.load(digestHex: s.bigHex, verify: false))
        let target = try #require((1..<index.checkpointCount).first { index.storedWindow($0) != nil && index.storedWindow($0)!.range.lowerBound >= Int(IndexArtifacts.headLength) })
        #expect(throws: IndexDamage.self) { _ = try index.checkpoint(target) }

        // A source answering wrong bytes: an error naming layer, blob and checkpoint; nothing written.
        IndexWindows.register(FixedSource(bytes: 7), indexPath: fresh.indexPath(digestHex: s.bigHex))
        #expect {
            _ = try index.checkpoint(target)
        } throws: { error in
            let text = "\(error)"
            return !(error is IndexDamage) && text.contains(s.bigHex) && text.contains("sha256:fixed") && text.contains("checkpoint \(target)")
        }
        #expect(try s.indexBytes(fresh, s.bigHex)[index.storedWindow(target)!.range].allSatisfy { $0 == 0 })

        // The registry: fetched, checked, written in, and the same window as the publisher's.
        let source = RegistryIndexWindowSource(client: s.client, digest: blob.digest, size: UInt64(blob.size))
        IndexWindows.register(source, indexPath: fresh.indexPath(digestHex: s.bigHex))
        defer { IndexWindows.unregister(indexPath: fresh.indexPath(digestHex: s.bigHex)) }
        let publisher = try #require(s.cache.load(digestHex: s.bigHex))
        #expect(try index.checkpoint(target).window == publisher.checkpoint(target).window)
        #expect(source.statistics.requests == 1)
        #expect(source.statistics.bytes == UInt64(index.storedWindow(target)!.range.count))
        let range = index.storedWindow(target)!.range
        #expect(try s.indexBytes(fresh, s.bigHex)[range] == honest[range])
        // Present now: read from the file, not fetched again.
        _ = try index.checkpoint(target)
        #expect(source.statistics.requests == 1)

        // Confirmed from the verified blob: the cache holds the whole index, trusted.
        try IndexArtifacts.confirm(layerDigestHex: s.bigHex, blob: s.blobs[1], cache: fresh)
        #expect(!IndexArtifacts.isUntrusted(layerDigestHex: s.bigHex, cache: fresh))
        #expect(try s.indexBytes(fresh, s.bigHex) == honest)
    }

    @Test("the windows section's place is announced on the index blob; a place the header does not confirm refuses the index",
          .enabled(if: enabled, TestRegistry.requirement))
    func announcedWindowsSection() throws {
        let s = try Setup()
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        var blob = try s.indexBlob(artifact)
        let section = try #require(IndexWindows.section(header: s.indexBytes(s.cache, s.bigHex)))
        #expect(blob.annotations?[IndexArtifactFormat.windowsAnnotation] == "\(section.lowerBound)-\(section.upperBound)")
        blob.annotations?[IndexArtifactFormat.windowsAnnotation] = "\(section.lowerBound + 8)-\(section.upperBound)"
        let fresh = try LayerCache(directory: s.temp.child("fresh"))
        #expect {
            _ = try IndexArtifacts.fetchIndex(blob, layer: s.image.layers[1], name: "artifact", client: s.client, cache: fresh)
        } throws: { error in
            error is IndexArtifactError && "\(error)".contains("does not place its windows section where its descriptor says")
        }
        #expect(FileIO.directoryEntries(fresh.directory).allSatisfy { !$0.hasPrefix(".tmp.") })
    }

    @Test("the prefetch list's ranges get their windows fetched ahead, coalesced", .enabled(if: enabled, TestRegistry.requirement))
    func prefetchFetchesWindows() throws {
        let s = try Setup()
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        let blob = try s.indexBlob(artifact)
        let fresh = try LayerCache(directory: s.temp.child("fresh"))
        _ = try #require(try IndexArtifacts.pull(image: s.image, client: s.client, cache: fresh))
        let index = try #require(fresh.load(digestHex: s.bigHex, verify: false))
        let source = RegistryIndexWindowSource(client: s.client, digest: blob.digest, size: UInt64(blob.size))
        let prefetch = IndexWindowPrefetch(layers: [.init(name: "sha256:\(s.bigHex)", index: index,
                                                          indexPath: fresh.indexPath(digestHex: s.bigHex), source: source)])
        // A range inside the last span: its checkpoint only. All spans: every window, in few requests.
        let last = index.checkpointCount - 1
        let tail = index.spanRange(last)
        var seen = Set<[Int]>()
        let one = prefetch.pieces([.init(layer: "sha256:\(s.bigHex)", offset: tail.lowerBound + 1, length: 10)], seen: &seen)
        #expect(one.flatMap(\.checkpoints) == [last])
        // A whole span (what a list holds) needs its own checkpoint's window, not its
        // neighbours' with which it may share a first or last byte.
        for k in 1..<last where index.storedWindow(k) != nil {
            let whole = index.spanRange(k)
            var fresh = Set<[Int]>()
            let pieces = prefetch.pieces([.init(layer: "sha256:\(s.bigHex)", offset: whole.lowerBound,
                                                length: whole.upperBound - whole.lowerBound)], seen: &fresh)
            #expect(pieces.flatMap(\.checkpoints) == [k], "span \(k) \(whole)")
        }
        // A mount makes a window from the listed span before it: of a run of listed spans, the
        // first window is fetched, and every windowDerivationDepth-th after it.
        let deriving = IndexWindowPrefetch(layers: prefetch.layers, derives: true)
        var runSeen = Set<[Int]>()
        let run = Array(1..<last)
        let asked = deriving.pieces(run.map { k in
            .init(layer: "sha256:\(s.bigHex)", offset: index.spanRange(k).lowerBound, length: index.spanRange(k).upperBound - index.spanRange(k).lowerBound)
        }, seen: &runSeen).flatMap(\.checkpoints)
        #expect(asked == run.filter { ($0 - 1) % LayerData.windowDerivationDepth == 0 }, "\(asked) of \(run)")
        // Asked for once: a later part of the list does not ask again.
        #expect(prefetch.pieces([.init(layer: "sha256:\(s.bigHex)", offset: tail.lowerBound + 2, length: 10)], seen: &seen).isEmpty)
        prefetch.run([.init(layer: "sha256:\(s.bigHex)", offset: 0, length: index.blobSize)])
        let withWindows = (0..<index.checkpointCount).filter { index.storedWindow($0) != nil }
        #expect(source.statistics.requests <= withWindows.count / 2 + 1, "\(source.statistics) for \(withWindows.count) windows")
        // Every window is present now: decoding needs no source.
        for i in withWindows { _ = try index.checkpoint(i) }
        var again = Set<[Int]>()
        #expect(prefetch.pieces([.init(layer: "sha256:\(s.bigHex)", offset: 0, length: index.blobSize)], seen: &again).isEmpty)
        let honest = try s.indexBytes(s.cache, s.bigHex)
        #expect(try s.indexBytes(fresh, s.bigHex) == honest)
    }

    @Test("a window forged in the published index (checksums consistent) is caught by confirm, fetched or not",
          .enabled(if: enabled, TestRegistry.requirement))
    func forgedWindowRejected() throws {
        let s = try Setup()
        let path = s.cache.indexPath(digestHex: s.bigHex)
        let honest = try IndexForgery.forge(path: path)
        let forged = try FileIO.readAll(path)
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        let blob = try s.indexBlob(artifact)
        let target = try IndexForgery.checkpointWithWindow(try LayerIndex(path: path))
        try FileIO.writeAtomically(path, honest)

        for fetchForged in [false, true] {
            let victim = try LayerCache(directory: s.temp.child("victim-\(fetchForged)"))
            _ = try #require(try IndexArtifacts.pull(image: s.image, client: s.client, cache: victim))
            #expect(IndexArtifactTrust.lazyWindows(victim, s.bigHex) != nil)
            if fetchForged {
                let source = RegistryIndexWindowSource(client: s.client, digest: blob.digest, size: UInt64(blob.size))
                IndexWindows.register(source, indexPath: victim.indexPath(digestHex: s.bigHex))
                let index = try #require(victim.load(digestHex: s.bigHex, verify: false))
                _ = try index.checkpoint(target)   // the forged window checks out against its forged checksum
                IndexWindows.unregister(indexPath: victim.indexPath(digestHex: s.bigHex))
                let range = index.storedWindow(target)!.range
                #expect(try s.indexBytes(victim, s.bigHex)[range] == forged[range])
            }
            #expect {
                try IndexArtifacts.confirm(layerDigestHex: s.bigHex, blob: s.blobs[1], cache: victim)
            } throws: { error in
                "\(error)".contains("differs from the one derived from the verified blob")
            }
            #expect(!FileIO.exists(victim.indexPath(digestHex: s.bigHex)))
            #expect(!IndexArtifacts.isUntrusted(layerDigestHex: s.bigHex, cache: victim))
        }
    }
}
