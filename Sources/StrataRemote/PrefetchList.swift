import StrataIndex
import StrataOCI
import StrataSystem

/// The order in which a container first read its image's bytes: byte ranges of layer blobs
/// (compressed offsets, as the lazy blob fetched them on demand), in the order of the first
/// read. Kept per image manifest in the cache, published in the index artifact, and replayed
/// right after a mount so the reads a start makes find their bytes already fetched.
///
///   CACHE/prefetch/sha256/<manifest hex>.json
///   {"manifest":"sha256:…","ranges":[{"layer":"sha256:…","length":N,"offset":N},…],"version":1}
public struct PrefetchList: Sendable, Codable, Equatable {
    public struct Entry: Sendable, Codable, Hashable {
        public var layer: String     // "sha256:<hex>" of the layer blob
        public var offset: UInt64
        public var length: UInt64
        public init(layer: String, offset: UInt64, length: UInt64) { self.layer = layer; self.offset = offset; self.length = length }
        public var range: Range<UInt64> { offset..<(offset + length) }
    }
    public var version = 1
    /// The image manifest it was recorded for ("sha256:…").
    public var manifest: String
    public var ranges: [Entry]

    /// A list longer than this keeps its first entries: a start reads a small part of an image.
    public static let maximumEntries = 1 << 16

    public init(manifest: Digest, ranges: [Entry] = []) {
        self.manifest = manifest.description
        self.ranges = ranges
    }

    /// The list with `order` appended: the ranges not already covered by an entry of the same
    /// layer, in their order. A mount that replayed the list demands only what the list lacked,
    /// so merging (rather than replacing) keeps what earlier mounts recorded.
    public func merging(_ order: [Entry]) -> PrefetchList {
        var out = self
        var covered: [String: [Range<UInt64>]] = [:]
        for e in ranges { covered[e.layer, default: []].append(e.range) }
        for e in order where e.length > 0 && out.ranges.count < PrefetchList.maximumEntries {
            if covered[e.layer]?.contains(where: { $0.lowerBound <= e.offset && e.range.upperBound <= $0.upperBound }) ?? false {
                continue
            }
            out.ranges.append(e)
            covered[e.layer, default: []].append(e.range)
        }
        return out
    }

    public func encoded() throws -> [UInt8] { try JSONCoding.encode(self) }

    /// Decodes and checks a list (from the cache or an artifact): version, digests, bounds.
    public static func decode(_ bytes: [UInt8], what: String) throws -> PrefetchList {
        let list = try JSONCoding.decode(PrefetchList.self, from: bytes, what: what)
        guard list.version == 1 else { throw IndexArtifactError("\(what): version \(list.version) is not 1") }
        _ = try Digest(parsing: list.manifest)
        guard list.ranges.count <= maximumEntries else { throw IndexArtifactError("\(what): more than \(maximumEntries) ranges") }
        for e in list.ranges {
            _ = try Digest(parsing: e.layer)
            guard e.length > 0, e.offset <= UInt64.max - e.length else {
                throw IndexArtifactError("\(what): bad range \(e.offset)+\(e.length) of \(e.layer)")
            }
        }
        return list
    }

    static func path(cache: LayerCache, manifest: Digest) -> String {
        "\(cache.directory)/prefetch/\(manifest.algorithm)/\(manifest.hex).json"
    }

    /// The list recorded (or pulled) for the image, nil when there is none or it is unreadable.
    public static func load(cache: LayerCache, manifest: Digest) -> PrefetchList? {
        let p = path(cache: cache, manifest: manifest)
        guard FileIO.exists(p), let bytes = try? FileIO.readAll(p),
              let list = try? decode(bytes, what: p), list.manifest == manifest.description else { return nil }
        return list
    }

    /// Stores the list as its image's (atomically; not fsynced: losing it costs only speed).
    public func store(cache: LayerCache) throws {
        let digest = try Digest(parsing: manifest)
        let p = PrefetchList.path(cache: cache, manifest: digest)
        try FileIO.makeDirectories(IndexArtifactTrust.parent(p))
        try FileIO.writeAtomically(p, try encoded(), durable: false)
    }
}
