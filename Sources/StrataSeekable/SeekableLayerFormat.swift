import StrataOCI

/// The formats the writers produce, named as on the command line.
public enum SeekableLayerFormat: String, Sendable, CaseIterable {
    case estargz
    case zstdChunked = "zstd:chunked"

    /// Both are ordinary OCI layers to tools that do not know them.
    public var mediaType: String {
        switch self {
        case .estargz: MediaType.ociLayerGzip
        case .zstdChunked: MediaType.ociLayerZstd
        }
    }
}

/// What a writer made: the blob's identity, the layer's diff_id and the annotations its manifest
/// descriptor must carry (they hold the TOC digest readers trust).
public struct SeekableLayerResult: Sendable, Equatable {
    public var format: SeekableLayerFormat
    public var blobSHA256Hex: String
    public var blobSize: UInt64
    /// sha256 of the uncompressed tar (eStargz: including the TOC entry; zstd:chunked: the tar alone).
    public var diffIDHex: String
    public var uncompressedSize: UInt64
    public var tocDigest: String
    public var annotations: [String: String]
    /// Entries in the TOC (chunks counted once per chunk).
    public var tocEntries: Int
    /// What reordering did, when the writer was given prioritized files.
    public var prioritization: PrioritizationResult?

    public var mediaType: String { format.mediaType }

    public init(format: SeekableLayerFormat, blobSHA256Hex: String, blobSize: UInt64, diffIDHex: String,
                uncompressedSize: UInt64, tocDigest: String, annotations: [String: String], tocEntries: Int,
                prioritization: PrioritizationResult? = nil) {
        self.format = format; self.blobSHA256Hex = blobSHA256Hex; self.blobSize = blobSize
        self.diffIDHex = diffIDHex; self.uncompressedSize = uncompressedSize; self.tocDigest = tocDigest
        self.annotations = annotations; self.tocEntries = tocEntries; self.prioritization = prioritization
    }
}
