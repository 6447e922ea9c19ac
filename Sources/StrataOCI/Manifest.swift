/// An image manifest (manifest.md), OCI or Docker schema 2 (same shape).
public struct Manifest: Hashable, Sendable, Codable {
    public var schemaVersion: Int
    public var mediaType: String?
    public var artifactType: String?
    public var config: Descriptor
    public var layers: [Descriptor]
    public var subject: Descriptor?
    public var annotations: [String: String]?

    public init(schemaVersion: Int = 2, mediaType: String? = MediaType.ociManifest, artifactType: String? = nil,
                config: Descriptor, layers: [Descriptor], subject: Descriptor? = nil,
                annotations: [String: String]? = nil) {
        self.schemaVersion = schemaVersion
        self.mediaType = mediaType
        self.artifactType = artifactType
        self.config = config
        self.layers = layers
        self.subject = subject
        self.annotations = annotations
    }
}
