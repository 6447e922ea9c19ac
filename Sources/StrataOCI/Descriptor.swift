/// A typed reference to a blob (descriptor.md).
public struct Descriptor: Hashable, Sendable, Codable {
    public var mediaType: String
    public var digest: Digest
    public var size: Int64
    public var urls: [String]?
    public var annotations: [String: String]?
    public var platform: Platform?
    public var artifactType: String?
    /// Embedded base64 content; kept only so re-encoding does not lose it.
    public var data: String?

    public init(mediaType: String, digest: Digest, size: Int64, urls: [String]? = nil,
                annotations: [String: String]? = nil, platform: Platform? = nil,
                artifactType: String? = nil, data: String? = nil) {
        self.mediaType = mediaType
        self.digest = digest
        self.size = size
        self.urls = urls
        self.annotations = annotations
        self.platform = platform
        self.artifactType = artifactType
        self.data = data
    }

    /// The tag recorded in `org.opencontainers.image.ref.name`, if any.
    public var refName: String? { annotations?[MediaType.refNameAnnotation] }
}
