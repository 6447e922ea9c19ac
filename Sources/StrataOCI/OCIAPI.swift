// PUBLIC CONTRACT of StrataOCI (owned by the OCI helper). Signatures sketched here; the helper
// implements them in files named for each type and may add to them.

/// "sha256:<64 hex>". Only sha256 is verified; other algorithms are refused with a clear error.
public struct Digest: Hashable, Sendable, CustomStringConvertible, Codable {
    public let algorithm: String
    public let hex: String
    public var description: String { "\(algorithm):\(hex)" }
}

/// How a layer's bytes are stored, from its media type.
public enum LayerFormat: String, Sendable, Codable { case tar, gzip, zstd }

public struct OCIError: Error, CustomStringConvertible, Sendable {
    public var message: String   // one line, naming the file, digest or reference at fault
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
