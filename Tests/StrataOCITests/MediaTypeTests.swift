import Testing
@testable import StrataOCI

@Test func layerFormatsOfAllKnownLayerTypes() throws {
    let expected: [(String, LayerFormat)] = [
        ("application/vnd.oci.image.layer.v1.tar", .tar),
        ("application/vnd.oci.image.layer.v1.tar+gzip", .gzip),
        ("application/vnd.oci.image.layer.v1.tar+zstd", .zstd),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar", .tar),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", .gzip),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+zstd", .zstd),
        ("application/vnd.docker.image.rootfs.diff.tar", .tar),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", .gzip),
        ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", .gzip),
    ]
    for (type, format) in expected {
        #expect(try MediaType.layerFormat(type) == format, "\(type)")
    }
}

@Test func unknownLayerMediaTypeIsNamed() {
    let message = errorMessage { _ = try MediaType.layerFormat("application/x-tar+lz4") }
    #expect(message == "unknown layer media type \"application/x-tar+lz4\"")
    #expect(errorMessage { _ = try MediaType.layerFormat(MediaType.ociConfig) }.contains(MediaType.ociConfig))
}

@Test func documentKinds() {
    #expect(MediaType.isIndex("application/vnd.docker.distribution.manifest.list.v2+json"))
    #expect(MediaType.isIndex(MediaType.ociIndex))
    #expect(MediaType.isManifest("application/vnd.docker.distribution.manifest.v2+json"))
    #expect(MediaType.isConfig("application/vnd.docker.container.image.v1+json"))
    #expect(!MediaType.isManifest(MediaType.ociIndex))
}
