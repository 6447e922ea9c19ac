/// How a layer's bytes are stored, from its media type.
public enum LayerFormat: String, Sendable, Codable { case tar, gzip, zstd }
