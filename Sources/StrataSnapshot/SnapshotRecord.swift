import StrataOCI

/// containerd's three kinds: an active snapshot is writable and can be committed; a view is a
/// read-only look at a committed parent; a committed snapshot is an immutable layer.
public enum SnapshotKind: String, Codable, Sendable {
    case active, view, committed
}

/// One snapshot as stored in metadata.json.
///
/// A committed snapshot owns one layer (a blob in ROOT/layout) and is described, with every
/// ancestor, by a "chain image": a manifest listing the layers from the root down to it, tagged
/// `snap-<id>` in ROOT/layout, so a plain `strata mount ROOT/layout:snap-<id>` serves it lazily.
/// Active snapshots and views own a directory ROOT/snapshots/<id> (upper, work, rootfs) and
/// borrow their parent's chain image as the lower.
public struct SnapshotRecord: Codable, Sendable, Equatable {
    /// Never reused: names the directory and the tag, so a key may be any string.
    public var id: UInt64
    public var kind: SnapshotKind
    public var parent: String?
    /// RFC 3339.
    public var created: String
    public var labels: [String: String]?
    /// Committed only: the layer blob, its uncompressed digest and the chain image.
    public var layer: Descriptor?
    public var diffID: Digest?
    public var image: Descriptor?

    public init(id: UInt64, kind: SnapshotKind, parent: String?, created: String, labels: [String: String]? = nil,
                layer: Descriptor? = nil, diffID: Digest? = nil, image: Descriptor? = nil) {
        self.id = id
        self.kind = kind
        self.parent = parent
        self.created = created
        self.labels = labels
        self.layer = layer
        self.diffID = diffID
        self.image = image
    }

    /// The tag of a committed snapshot's chain image in ROOT/layout.
    public var tag: String { SnapshotRecord.tag(id: id) }
    public static func tag(id: UInt64) -> String { "snap-\(id)" }
}

/// The whole of metadata.json. `nextID` only grows.
public struct SnapshotMetadata: Codable, Sendable, Equatable {
    public static let currentVersion = 1
    public var version: Int
    public var nextID: UInt64
    public var snapshots: [String: SnapshotRecord]

    public init() {
        version = SnapshotMetadata.currentVersion
        nextID = 1
        snapshots = [:]
    }

    /// Keys whose parent is `key`.
    public func children(of key: String) -> [String] {
        snapshots.filter { $0.value.parent == key }.map(\.key).sorted()
    }

    /// `key` and its ancestors, nearest first. Assumes a checked state (no cycles).
    public func chain(from key: String) -> [String] {
        var result: [String] = []
        var current: String? = key
        while let k = current, let record = snapshots[k], result.count <= snapshots.count {
            result.append(k)
            current = record.parent
        }
        return result
    }
}
