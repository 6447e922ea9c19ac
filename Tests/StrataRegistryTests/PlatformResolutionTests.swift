import Foundation
import StrataOCI
import StrataRegistry
import StrataSystem
import StrataTestSupport
import Testing

@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct PlatformResolutionTests {
    /// An OCI index of two manifests (linux/amd64, linux/arm64/v8) sharing one layer.
    static func multiArchLayout(_ temp: TempDirectory) throws -> (ImageBuilder, [String: Descriptor]) {
        let builder = try ImageBuilder(layout: temp.child("layout"))
        let layer = try builder.addLayer(entries: [Items.file("hello", "multi-arch\n")])
        var manifests: [String: Descriptor] = [:]
        var entries: [Descriptor] = []
        for (arch, variant) in [("amd64", nil), ("arm64", "v8")] as [(String, String?)] {
            let config = ImageConfig(architecture: arch, os: "linux", rootfs: .init(diffIDs: [layer.diffID]))
            let configDescriptor = try builder.writer.writeJSON(config, mediaType: MediaType.ociConfig)
            let manifest = Manifest(config: configDescriptor, layers: [layer.descriptor])
            var descriptor = try builder.writer.writeJSON(manifest, mediaType: MediaType.ociManifest)
            descriptor.platform = Platform(os: "linux", architecture: arch, variant: variant)
            manifests[arch] = descriptor
            entries.append(descriptor)
        }
        let index = try builder.writer.writeJSON(ImageIndex(manifests: entries), mediaType: MediaType.ociIndex)
        try builder.writer.tag(index, as: "multi")
        manifests["index"] = index
        return (builder, manifests)
    }

    @Test func indexResolvesToThePlatformAskedFor() throws {
        let temp = try TempDirectory()
        let (builder, manifests) = try Self.multiArchLayout(temp)
        let registry = try RegistryFixture.shared().registry
        let text = try registry.push(layout: builder.reference("multi"), reference: "multi/app:multi")
        let ref = try #require(try RegistryReference.parse(text))
        let client = try RegistryClient(ref, options: RegistryFixture.options())

        let top = try client.manifest("multi")
        #expect(top.isIndex)
        #expect(top.digest == manifests["index"]?.digest)

        let arm = try RemoteImage.resolve(ref, client: client, platform: try Platform(parsing: "linux/arm64"))
        #expect(arm.manifestDigest == manifests["arm64"]?.digest)
        #expect(arm.platform.architecture == "arm64")
        #expect(arm.indexChain == [top.digest])
        #expect(arm.transport == .registry)

        let amd = try RemoteImage.resolve(ref, client: client, platform: try Platform(parsing: "linux/amd64"))
        #expect(amd.manifestDigest == manifests["amd64"]?.digest)

        // The same choice a layout makes.
        let local = try ImageResolver.resolve(reference: builder.reference("multi"), platform: try Platform(parsing: "linux/arm64"))
        #expect(local.manifestDigest == arm.manifestDigest)

        let e = try #require(throws: RegistryError.self) {
            try RemoteImage.resolve(ref, client: client, platform: try Platform(parsing: "linux/s390x"))
        }
        #expect(e.kind == .notFound)
        #expect(e.description.contains("linux/s390x"))
        #expect(e.description.contains("linux/arm64/v8"))

        // A digest reference to the index itself, and to one platform's manifest.
        let byIndexDigest = try #require(try RegistryReference.parse(registry.reference("multi/app@\(top.digest)")))
        #expect(try RemoteImage.resolve(byIndexDigest, client: client, platform: try Platform(parsing: "linux/arm64")).manifestDigest
                == manifests["arm64"]?.digest)
    }

    @Test func manyThreadsReadRangesAtOnce() throws {
        let f = try RegistryFixture.shared()
        let client = try RegistryClient(host: f.registry.host, repository: "strata/app", options: RegistryFixture.options())
        let (layer, blob) = try f.bigLayer()
        let results = Locked<[Bool]>([])
        let threads = 8, reads = 12
        let done = DispatchSemaphore(value: 0)
        for t in 0..<threads {
          Thread.detachNewThread {
            var ok = true
            for i in 0..<reads {
                let start = (t * 7919 + i * 104_729) % (blob.count - 70_000)
                let range = UInt64(start)..<UInt64(start + 1 + (i * 5003) % 65_536)
                let bytes = (try? client.blob(layer.digest, range: range)) ?? []
                ok = ok && bytes == Array(blob[Int(range.lowerBound)..<Int(range.upperBound)])
            }
            results.withLock { $0.append(ok) }
            done.signal()
          }
        }
        for _ in 0..<threads { done.wait() }
        #expect(results.withLock { $0 } == Array(repeating: true, count: threads))
        #expect(client.statistics.rangeRequests == threads * reads)
    }
}

@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct DockerMediaTypeTests {
    /// Docker schema 2 images come back as schema 2 (not rewritten to schema 1: the Accept
    /// header lists the Docker types), and resolve like OCI ones.
    @Test func dockerSchema2ImageResolves() throws {
        let temp = try TempDirectory()
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.file("docker", "schema 2\n")], mediaTypeStyle: .docker)
        let manifest = try builder.write(tag: "d")
        let registry = try RegistryFixture.shared().registry
        let ref = try #require(try RegistryReference.parse(registry.reference("docker/app:d")))
        let client = try RegistryClient(ref, options: RegistryFixture.options())
        // skopeo's oci: transport skips Docker-typed manifests, so push it with the client.
        let local = try ImageResolver.resolve(reference: builder.reference("d"))
        for layer in local.layers { try client.pushBlob(file: builder.blobPath(layer.descriptor.digest)) }
        try client.pushBlob(local.configBytes)
        try client.pushManifest(local.manifestBytes, mediaType: MediaType.dockerManifest, reference: "d")
        let remote = try client.manifest("d")
        #expect(remote.mediaType == MediaType.dockerManifest)
        #expect(remote.digest == manifest.digest)
        let image = try RemoteImage.resolve(ref, client: client, platform: nil)
        #expect(image.manifestDigest == manifest.digest)
        #expect(image.configDescriptor.mediaType == MediaType.dockerConfig)
    }
}
