import Testing
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataRemote
import StrataSystem
import StrataTestSupport

/// Index artifacts against a real Debian docker-registry (no referrers API: the fallback tag).
@Suite("Index artifacts", .serialized)
struct IndexArtifactTests {
    static let artifactType = "application/vnd.strata.index.v1+json"
    static let layerIndexType = "application/vnd.strata.layer-index.v1"
    static let layerAnnotation = "vnd.strata.layer.digest"

    /// A two-layer image whose second layer spans several checkpoints (text and noise, so its
    /// windows matter), pushed as test/app:v1; and a cache with every layer indexed from the
    /// layout (what `strata index` leaves), as the publishing machine has.
    struct Setup {
        let temp: TempDirectory
        let registry: TestRegistry
        let layout: String
        let client: RegistryClient
        let image: ResolvedImage
        let blobs: [LayerBlob]
        let cache: LayerCache

        init() throws {
            temp = try TempDirectory()
            registry = try TestRegistry()
            layout = temp.child("layout")
            let b = try ImageBuilder(layout: layout)
            try b.addLayer(entries: [
                Items.dir("etc"), Items.file("etc/os-release", "ID=strata-test\n"), Items.dir("usr"),
                Items.file("usr/tool", "#!/bin/sh\necho tool\n", mode: 0o755),
            ])
            var text: [UInt8] = []
            var line = 0
            while text.count < 7 << 20 {
                text += Array("line \(line) of a text-like file that compresses, \(line % 97) \(line * 31 % 1013)\n".utf8)
                line += 1
            }
            try b.addLayer(entries: [
                Items.dir("data"), Items.file(Array("data/text".utf8), text),
                Items.file(Array("data/noise".utf8), Items.pseudoRandom(count: 3 << 20, seed: 7)),
                Items.file("data/small", "small file\n"),
            ])
            try b.write(tag: "v1")
            try registry.push(layout: "\(layout):v1", reference: "test/app:v1")
            (client, image) = try registry.resolve("test/app", tag: "v1")
            let local = try ImageResolver.resolve(reference: "\(layout):v1", platform: nil)
            guard local.manifestDigest == image.manifestDigest else {
                throw HarnessError("skopeo changed the manifest: \(local.manifestDigest) vs \(image.manifestDigest)")
            }
            blobs = local.layers.enumerated().map { i, layer in
                LayerBlob(location: local.layerLocation(i), descriptor: layer.descriptor, format: layer.format,
                          diffID: DiffIDClaim(number: i, digest: layer.diffID))
            }
            cache = try LayerCache(directory: temp.child("publisher-cache"))
            for blob in blobs { _ = try cache.index(blob) }
        }

        func freshCache(_ name: String) throws -> LayerCache { try LayerCache(directory: temp.child(name)) }

        func indexBytes(_ cache: LayerCache, _ i: Int) throws -> [UInt8] {
            try FileIO.readAll(cache.indexPath(digestHex: image.layers[i].descriptor.digest.hex))
        }

        func manifest(_ digest: Digest) throws -> Manifest {
            let m = try client.manifest(digest.description)
            return try JSONCoding.decode(Manifest.self, from: m.bytes, what: "artifact \(digest)")
        }

        /// The fallback referrers list (tag sha256-<manifest hex>).
        func referrers() throws -> ImageIndex {
            let m = try client.manifest("sha256-\(image.manifestDigest.hex)")
            #expect(m.mediaType == MediaType.ociIndex)
            return try JSONCoding.decode(ImageIndex.self, from: m.bytes, what: "referrers tag")
        }

        /// Another tool's referrer of the image (a signature, say), in the fallback list.
        func pushForeignReferrer() throws -> Digest {
            let empty = try client.pushBlob(Array("{}".utf8))
            let payload = try client.pushBlob(Array("signature of \(image.manifestDigest)".utf8))
            let manifest = Manifest(artifactType: "application/vnd.example.signature",
                                    config: Descriptor(mediaType: "application/vnd.oci.empty.v1+json", digest: empty.digest, size: 2),
                                    layers: [Descriptor(mediaType: "application/vnd.example.signature.v1", digest: payload.digest, size: payload.size)],
                                    subject: Descriptor(mediaType: image.manifestDescriptor.mediaType, digest: image.manifestDigest,
                                                        size: image.manifestDescriptor.size))
            let bytes = try JSONCoding.encode(manifest)
            let digest = try client.pushManifest(bytes, mediaType: MediaType.ociManifest, reference: Digest.sha256(of: bytes).description)
            let list = ImageIndex(manifests: [Descriptor(mediaType: MediaType.ociManifest, digest: digest, size: Int64(bytes.count),
                                                         artifactType: "application/vnd.example.signature")])
            _ = try client.pushManifest(try JSONCoding.encode(list), mediaType: MediaType.ociIndex, reference: "sha256-\(image.manifestDigest.hex)")
            return digest
        }
    }

    static let enabled = TestRegistry.isAvailable

    @Test("push: an OCI artifact with the empty config, one blob per layer index, the image as subject; listed in the fallback tag with other referrers kept",
          .enabled(if: enabled, TestRegistry.requirement))
    func pushShape() throws {
        let s = try Setup()
        let foreign = try s.pushForeignReferrer()
        let first = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)

        let m = try s.manifest(first)
        #expect(m.mediaType == MediaType.ociManifest)
        #expect(m.artifactType == Self.artifactType)
        #expect(m.config.mediaType == "application/vnd.oci.empty.v1+json")
        #expect(m.config.digest.description == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        #expect(m.config.size == 2)
        #expect(m.subject?.digest == s.image.manifestDigest)
        #expect(m.subject?.size == s.image.manifestDescriptor.size)
        let indexBlobs = m.layers.filter { $0.mediaType == Self.layerIndexType }
        try #require(indexBlobs.count == s.image.layers.count)
        for (i, blob) in indexBlobs.enumerated() {
            #expect(blob.annotations?[Self.layerAnnotation] == s.image.layers[i].descriptor.digest.description)
            let bytes = try s.indexBytes(s.cache, i)
            #expect(blob.digest == Digest.sha256(of: bytes))
            #expect(blob.size == Int64(bytes.count))
            #expect(try s.client.blob(blob.digest, range: 0..<UInt64(blob.size)) == bytes)
        }

        var list = try s.referrers()
        #expect(Set(list.manifests.map(\.digest)) == [foreign, first])
        let ours = try #require(list.manifests.first { $0.digest == first })
        #expect(ours.artifactType == Self.artifactType)
        #expect(ours.mediaType == MediaType.ociManifest)

        // A second push (now with a prefetch list, so another artifact) replaces ours, keeps the other.
        let prefetch = PrefetchList(manifest: s.image.manifestDigest, ranges: [
            .init(layer: s.image.layers[1].descriptor.digest.description, offset: 0, length: 300_000),
        ])
        try prefetch.store(cache: s.cache)
        let second = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        #expect(second != first)
        list = try s.referrers()
        #expect(Set(list.manifests.map(\.digest)) == [foreign, second])
        #expect(try s.manifest(second).layers.contains { $0.mediaType == "application/vnd.strata.prefetch.v1+json" })
    }

    @Test("pull with a fresh cache installs the same index bytes, untrusted until confirmed; the prefetch list comes along",
          .enabled(if: enabled, TestRegistry.requirement))
    func pullInstallsSameBytes() throws {
        let s = try Setup()
        let fresh = try s.freshCache("fresh")
        #expect(try IndexArtifacts.pull(image: s.image, client: s.client, cache: fresh) == nil)

        let prefetch = PrefetchList(manifest: s.image.manifestDigest, ranges: [
            .init(layer: s.image.layers[1].descriptor.digest.description, offset: 65536, length: 262144),
            .init(layer: s.image.layers[0].descriptor.digest.description, offset: 0, length: 100),
        ])
        try prefetch.store(cache: s.cache)
        _ = try s.pushForeignReferrer()
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)

        let pulled = try #require(try IndexArtifacts.pull(image: s.image, client: s.client, cache: fresh))
        #expect(pulled.artifact == artifact)
        #expect(pulled.layers == s.image.layers.map(\.descriptor.digest.hex))
        #expect(pulled.prefetch == prefetch)
        #expect(PrefetchList.load(cache: fresh, manifest: s.image.manifestDigest) == prefetch)
        for i in s.image.layers.indices {
            let hex = s.image.layers[i].descriptor.digest.hex
            #expect(try s.indexBytes(fresh, i) == s.indexBytes(s.cache, i))
            #expect(IndexArtifacts.isUntrusted(layerDigestHex: hex, cache: fresh))
            #expect(fresh.load(digestHex: hex) != nil)
        }

        // An unconfirmed index is not taken as verified by a local image's indexing: rebuilt.
        let other = try s.freshCache("other")
        _ = try IndexArtifacts.pull(image: s.image, client: s.client, cache: other)
        let rebuilt = try other.index(s.blobs[0])
        #expect(rebuilt.built)
        #expect(!IndexArtifacts.isUntrusted(layerDigestHex: s.blobs[0].digestHex, cache: other))

        // Confirmed against the verified blob: trusted from then on.
        for blob in s.blobs {
            try IndexArtifacts.confirm(layerDigestHex: blob.digestHex, blob: blob, cache: fresh)
            #expect(!IndexArtifacts.isUntrusted(layerDigestHex: blob.digestHex, cache: fresh))
            #expect(fresh.verifiedDiffID(digestHex: blob.digestHex) != nil)
            let (_, built) = try fresh.index(blob)
            #expect(!built)
        }
        // A cache that has the indexes keeps them: nothing installed.
        let again = try #require(try IndexArtifacts.pull(image: s.image, client: s.client, cache: fresh))
        #expect(again.layers.isEmpty)
        #expect(again.alreadyCached.count == s.image.layers.count)
    }

    @Test("a forged artifact (a checkpoint window altered, digests recomputed so it parses) is installed, then rejected by confirm",
          .enabled(if: enabled, TestRegistry.requirement))
    func forgedArtifactRejected() throws {
        let s = try Setup()
        let layer = 1
        let hex = s.image.layers[layer].descriptor.digest.hex
        let honest = try s.indexBytes(s.cache, layer)
        let index = try #require(s.cache.load(digestHex: hex))
        // The rewrite reproduces the index exactly: the forgery changes one window and nothing else.
        #expect(try IndexForgery.rewrite(index, alteringWindowOf: nil) == honest)
        let forged = try IndexForgery.rewrite(index, alteringWindowOf: try IndexForgery.checkpointWithWindow(index))
        #expect(forged != honest)
        #expect(forged.count == honest.count)

        // The attacker publishes it with Strata itself, from a cache holding the forged index.
        try FileIO.writeAtomically(s.cache.indexPath(digestHex: hex), forged)
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)

        let victim = try s.freshCache("victim")
        let pulled = try #require(try IndexArtifacts.pull(image: s.image, client: s.client, cache: victim))
        #expect(pulled.artifact == artifact)
        #expect(try s.indexBytes(victim, layer) == forged)   // it parses: installed, used at once
        #expect(IndexArtifacts.isUntrusted(layerDigestHex: hex, cache: victim))

        // The honest layer confirms; the forged one is rejected and removed.
        try IndexArtifacts.confirm(layerDigestHex: s.blobs[0].digestHex, blob: s.blobs[0], cache: victim)
        #expect(throws: IndexArtifactError.self) {
            try IndexArtifacts.confirm(layerDigestHex: hex, blob: s.blobs[layer], cache: victim)
        }
        #expect(!FileIO.exists(victim.indexPath(digestHex: hex)))
        #expect(!IndexArtifacts.isUntrusted(layerDigestHex: hex, cache: victim))
        #expect(victim.verifiedDiffID(digestHex: hex) == nil)
        #expect(victim.load(digestHex: s.blobs[0].digestHex) != nil)
    }

    @Test("pull skips an artifact whose subject is another image", .enabled(if: enabled, TestRegistry.requirement))
    func otherSubjectIgnored() throws {
        let s = try Setup()
        // Publish the image's artifact, then list it under another image's fallback tag.
        let artifact = try IndexArtifacts.push(image: s.image, client: s.client, cache: s.cache)
        let list = try s.referrers()
        let b = try ImageBuilder(layout: s.temp.child("other"))
        try b.addLayer(entries: [Items.file("x", "x\n")])
        try b.write(tag: "v1")
        try s.registry.push(layout: "\(s.temp.child("other")):v1", reference: "test/app:v1")
        let (_, other) = try s.registry.resolve("test/app", tag: "v1")
        #expect(other.manifestDigest != s.image.manifestDigest)
        _ = try s.client.pushManifest(try JSONCoding.encode(list), mediaType: MediaType.ociIndex, reference: "sha256-\(other.manifestDigest.hex)")
        #expect(list.manifests.contains { $0.digest == artifact })
        #expect(try IndexArtifacts.pull(image: other, client: s.client, cache: try s.freshCache("fresh")) == nil)
    }
}
