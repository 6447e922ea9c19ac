import StrataOCI

/// A manifest or index as the registry served it: the exact bytes, their media type (from
/// Content-Type, checked against the document's own `mediaType`) and their verified digest.
public struct RemoteManifest: Sendable, Hashable {
    public var bytes: [UInt8]
    public var mediaType: String
    public var digest: Digest

    public init(bytes: [UInt8], mediaType: String, digest: Digest) {
        self.bytes = bytes
        self.mediaType = mediaType
        self.digest = digest
    }

    public var isIndex: Bool { MediaType.isIndex(mediaType) }

    /// A descriptor of these bytes.
    public var descriptor: Descriptor {
        Descriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count))
    }
}
