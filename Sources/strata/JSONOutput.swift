#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `--json` output: one object, keys sorted, as `inspect --json` prints it.
enum JSONOutput {
    static func print<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        Swift.print(String(decoding: try encoder.encode(value), as: UTF8.self))
    }
}

/// `index --json`.
struct IndexReport: Encodable {
    struct Layer: Encodable {
        var digest: String
        var compression: String
        var entries: Int
        var checkpoints: Int
        var uncompressedSize: UInt64
        var indexSize: UInt64
        /// A zstd layer's re-encoded framed copy in the cache (0: none).
        var copySize: UInt64
        var built: Bool
    }
    struct Tree: Encodable {
        var inodes: Int
        var size: Int
        var built: Bool
    }
    var reference: String
    var manifestDigest: String
    var layers: [Layer]
    var mergedTree: Tree
    /// The index artifact published (`--push`); absent otherwise.
    var artifact: String? = nil
}

/// `commit --json`.
struct CommitReport: Encodable {
    var reference: String
    var tag: String
    var manifestDigest: String
    var configDigest: String
    var layerDigest: String
    var layerSize: Int64
    var diffID: String
    var warnings: [String]
}

/// `gc --json`.
struct GCReportJSON: Encodable {
    var blobsRemoved: Int
    var blobBytes: Int64
    var cacheFilesRemoved: Int
    var cacheBytes: Int64
    var evicted: Int
    var evictedBytes: Int64
    var cacheSize: Int64
    var tagsRemoved: [String]
    var directoriesRemoved: [String]
}

/// `bundle --json` (and `bundle --remove --json`).
struct BundleReport: Encodable {
    var bundle: String
    var manifestDigest: String?
    var rootfs: String?
    var upper: String?
    var removed: Bool

    // Every key always present (null when it does not apply), so readers need no defaults.
    enum CodingKeys: String, CodingKey { case bundle, manifestDigest, rootfs, upper, removed }
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(bundle, forKey: .bundle)
        try c.encode(manifestDigest, forKey: .manifestDigest)
        try c.encode(rootfs, forKey: .rootfs)
        try c.encode(upper, forKey: .upper)
        try c.encode(removed, forKey: .removed)
    }
}
