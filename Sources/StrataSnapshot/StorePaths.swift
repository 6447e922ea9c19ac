/// Where everything of a store lives under its root:
///
///     ROOT/lock               flock(2) serialising every change (and the reads that check it)
///     ROOT/metadata.json      the snapshots (SnapshotMetadata), replaced by write-then-rename
///     ROOT/layout/            an OCI image layout: layer blobs, chain images, tags snap-<id>
///     ROOT/cache/             layer indexes and decoded copies (StrataIndex's LayerCache)
///     ROOT/snapshots/<id>/    an active snapshot's upper, work and rootfs (its mountpoint);
///                             a view's rootfs
public struct StorePaths: Sendable {
    public let root: String

    public init(root: String) {
        var r = root
        while r.count > 1 && r.hasSuffix("/") { r.removeLast() }
        self.root = r
    }

    public var lock: String { root + "/lock" }
    public var metadata: String { root + "/metadata.json" }
    public var layout: String { root + "/layout" }
    public var cache: String { root + "/cache" }
    public var snapshots: String { root + "/snapshots" }

    public func directory(id: UInt64) -> String { "\(snapshots)/\(id)" }
    public func upper(id: UInt64) -> String { directory(id: id) + "/upper" }
    public func work(id: UInt64) -> String { directory(id: id) + "/work" }
    public func rootfs(id: UInt64) -> String { directory(id: id) + "/rootfs" }
    /// A temporary read-only mount of the parent, for commits that need to read renamed
    /// directories from the lower.
    public func lower(id: UInt64) -> String { directory(id: id) + "/lower" }

    /// The image every parentless snapshot is mounted on: no layers.
    public static let emptyImageTag = "strata-empty"
}
