import StrataSystem

// PUBLIC CONTRACT of StrataCodec (owned by the codec helper; other modules code against it).
// Bodies are to be implemented; signatures change only by agreement.

public enum LayerCompression: String, Sendable, Codable {
    case none, gzip, zstd
}

/// A place where decoding of a layer blob can start again.
/// gzip: a deflate block boundary (zran-style): `compressedOffset` is the offset in the blob of the
/// first byte not fully consumed, `bits` how many bits of the byte before it are still unused (0...7),
/// `window` the up to 32 KiB of output before `uncompressedOffset` (empty at a member start).
/// zstd: a frame start (bits 0, window empty). none: every offset (not stored).
public struct Checkpoint: Sendable, Equatable {
    public var compressedOffset: UInt64
    public var uncompressedOffset: UInt64
    public var bits: UInt8
    public var window: [UInt8]
    public init(compressedOffset: UInt64, uncompressedOffset: UInt64, bits: UInt8 = 0, window: [UInt8] = []) {
        self.compressedOffset = compressedOffset
        self.uncompressedOffset = uncompressedOffset
        self.bits = bits
        self.window = window
    }
}

public struct CodecError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable { case corrupt, truncated, trailingGarbage, unsupported, io }
    public var kind: Kind
    public var message: String          // e.g. "invalid deflate block type"
    public var compressedOffset: UInt64 // where in the blob it was found
    public init(kind: Kind, message: String, compressedOffset: UInt64) {
        self.kind = kind; self.message = message; self.compressedOffset = compressedOffset
    }
    public var description: String { "\(message) at compressed offset \(compressedOffset)" }
}
