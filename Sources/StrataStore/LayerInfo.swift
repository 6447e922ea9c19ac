import StrataCodec
import StrataOCI

/// The `info` file of a layer directory: JSON that c/storage 1.43 decodes into its `Layer`
/// record (`layers.go`: `PutAdditionalLayer`; `id`, `parent` and `created` are its own).
/// c/image takes `diff-digest` as the layer's DiffID, unchecked, and derives the layer's ID
/// from it: it must be the config's `rootfs.diff_ids[i]`.
public struct LayerInfo: Sendable, Equatable {
    /// `compressed-diff-digest`: the blob's digest.
    public var compressedDigest: Digest
    /// `compressed-size` (int64): the blob's size.
    public var compressedSize: UInt64
    /// `diff-digest`: the DiffID.
    public var diffDigest: Digest
    /// `diff-size` (int64): the uncompressed tar's size.
    public var diffSize: UInt64
    /// `compression`: c/storage's `archive.Compression` (0 none, 1 bzip2, 2 gzip, 3 xz, 4 zstd).
    public var compression: Int

    public init(compressedDigest: Digest, compressedSize: UInt64, diffDigest: Digest, diffSize: UInt64, compression: LayerCompression) {
        self.compressedDigest = compressedDigest
        self.compressedSize = compressedSize
        self.diffDigest = diffDigest
        self.diffSize = diffSize
        self.compression = Self.code(compression)
    }

    /// `archive.Compression`'s number for a layer's compression.
    public static func code(_ compression: LayerCompression) -> Int {
        switch compression {
        case .none: 0
        case .gzip: 2
        case .zstd: 4
        }
    }

    /// The file's bytes: one JSON object, fields in a fixed order, ending in a newline.
    public var json: [UInt8] {
        Array(("{\"compressed-diff-digest\":\"\(compressedDigest)\",\"compressed-size\":\(compressedSize),"
               + "\"diff-digest\":\"\(diffDigest)\",\"diff-size\":\(diffSize),\"compression\":\(compression)}\n").utf8)
    }
}
