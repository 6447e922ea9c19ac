import StrataSystem

/// How a layer blob is compressed.
public enum LayerCompression: String, Sendable, Codable {
    case none, gzip, zstd
}

/// A place where decoding of a layer blob can start again (see `IndexingDecoder`, `SpanDecoder`).
/// gzip, inside a member: a deflate block boundary (zran-style). `compressedOffset` is the offset
/// in the blob of the first byte inflate has not taken at all; `bits` (0...7) says how many high
/// bits of the byte at `compressedOffset - 1` are still unread (0: decoding starts exactly at
/// `compressedOffset`); `window` is the member's last ≤ 32 KiB of output before `uncompressedOffset`.
/// gzip, member start: `compressedOffset` is the member's raw deflate data (past its gzip header),
/// bits 0, window empty. zstd: a frame start (its magic number), bits 0, window empty.
/// none: `[offset 0]` is stored; any offset works (compressed == uncompressed).
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

/// A blob that cannot be decoded: what is wrong and where in the compressed bytes.
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
