/// Media types of OCI image-spec (media-types.md) and Docker image manifest v2 schema 2,
/// which `docker save` and older registries still produce.
public enum MediaType {
    public static let ociIndex = "application/vnd.oci.image.index.v1+json"
    public static let ociManifest = "application/vnd.oci.image.manifest.v1+json"
    public static let ociConfig = "application/vnd.oci.image.config.v1+json"
    public static let ociLayout = "application/vnd.oci.layout.header.v1+json"
    public static let ociLayerTar = "application/vnd.oci.image.layer.v1.tar"
    public static let ociLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
    public static let ociLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
    public static let ociLayerNondistributableTar = "application/vnd.oci.image.layer.nondistributable.v1.tar"
    public static let ociLayerNondistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    public static let ociLayerNondistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

    public static let dockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
    public static let dockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
    public static let dockerManifestSchema1 = "application/vnd.docker.distribution.manifest.v1+json"
    public static let dockerManifestSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    public static let dockerConfig = "application/vnd.docker.container.image.v1+json"
    public static let dockerLayerTar = "application/vnd.docker.image.rootfs.diff.tar"
    public static let dockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    public static let dockerLayerZstd = "application/vnd.docker.image.rootfs.diff.tar.zstd"
    public static let dockerForeignLayerTar = "application/vnd.docker.image.rootfs.foreign.diff.tar"
    public static let dockerForeignLayerGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

    /// The annotation holding a tag in index.json (annotations.md).
    public static let refNameAnnotation = "org.opencontainers.image.ref.name"
    /// containerd and `docker save` also record the full image name here.
    public static let containerdImageNameAnnotation = "io.containerd.image.name"

    private static let layerFormats: [String: LayerFormat] = [
        ociLayerTar: .tar, ociLayerGzip: .gzip, ociLayerZstd: .zstd,
        ociLayerNondistributableTar: .tar, ociLayerNondistributableGzip: .gzip, ociLayerNondistributableZstd: .zstd,
        dockerLayerTar: .tar, dockerLayerGzip: .gzip, dockerLayerZstd: .zstd,
        dockerForeignLayerTar: .tar, dockerForeignLayerGzip: .gzip,
    ]

    /// The storage format of a layer; an unknown (or non-layer) media type is an error naming it.
    /// The OCI name of a layer media type: Docker's layer types carry the same bytes, so
    /// manifests we write name them the OCI way. Other types come back unchanged.
    public static func ociLayerType(_ mediaType: String) -> String {
        switch mediaType {
        case dockerLayerGzip: ociLayerGzip
        case dockerLayerTar: ociLayerTar
        case dockerLayerZstd: ociLayerZstd
        case dockerForeignLayerGzip: ociLayerNondistributableGzip
        case dockerForeignLayerTar: ociLayerNondistributableTar
        default: mediaType
        }
    }

    public static func layerFormat(_ mediaType: String) throws -> LayerFormat {
        guard let format = layerFormats[mediaType] else {
            throw OCIError("unknown layer media type \"\(mediaType)\"")
        }
        return format
    }

    public static func isIndex(_ mediaType: String) -> Bool {
        mediaType == ociIndex || mediaType == dockerManifestList
    }

    public static func isManifest(_ mediaType: String) -> Bool {
        mediaType == ociManifest || mediaType == dockerManifest
    }

    public static func isConfig(_ mediaType: String) -> Bool {
        mediaType == ociConfig || mediaType == dockerConfig
    }
}
