#if canImport(Glibc)
import Glibc
#endif
import StrataIndex
import StrataOCI
import StrataSystem

/// What a runtime needs to use a snapshot as its root filesystem.
public struct SnapshotMount: Sendable, Equatable {
    /// The mounted tree: use it as the rootfs (or bind-mount it where the runtime wants it).
    public var mountpoint: String
    public var readOnly: Bool
    /// The image reference mounted there (the parent's chain image).
    public var image: String
    /// The upper directory taking the writes (active snapshots only).
    public var upper: String?
}

extension SnapshotStore {
    /// containerd's Mounts, made concrete: a FUSE mount of the parent's chain image at
    /// ROOT/snapshots/<id>/rootfs, writable through the snapshot's upper for an active
    /// snapshot, read-only for a view. Mounted on first call; later calls return the same.
    public func mounts(_ key: String) throws -> SnapshotMount {
        try transaction(.change) { metadata in
            let record = try Self.record(key, in: metadata)
            guard record.kind != .committed else {
                throw SnapshotError(.failedPrecondition, "snapshot \"\(key)\" is committed: it has no mounts (prepare or view a child)")
            }
            let image = try lowerReference(parent: record.parent, in: metadata)
            let rootfs = paths.rootfs(id: record.id)
            let upper = record.kind == .active ? paths.upper(id: record.id) : nil
            let mount = SnapshotMount(mountpoint: rootfs, readOnly: upper == nil, image: image, upper: upper)
            if mounter.isMounted(rootfs) { return mount }
            try ensureLayout()
            try FileIO.makeDirectories(rootfs)
            // The mount reads these indexes and copies: they are now the most recently used.
            LayerCache(existing: paths.cache).touch(layers: layers(of: record.parent, in: metadata).map(\.digest.hex))
            do {
                try mounter.mount(image: image, at: rootfs, upper: upper, work: upper.map { _ in paths.work(id: record.id) },
                                  cache: paths.cache)
            } catch {
                throw SnapshotError(.other, "snapshot \"\(key)\": mounting \(image) at \(rootfs) failed: \(error)")
            }
            return mount
        }
    }

    /// Unmounts the snapshot's rootfs if mounted (the snapshot itself stays).
    public func unmount(_ key: String) throws {
        try transaction(.read) { metadata in
            let record = try Self.record(key, in: metadata)
            let rootfs = paths.rootfs(id: record.id)
            guard record.kind != .committed, mounter.isMounted(rootfs) else { return }
            do { try mounter.unmount(rootfs) } catch {
                throw SnapshotError(.other, "snapshot \"\(key)\": cannot unmount \(rootfs): \(error)")
            }
        }
    }

    /// containerd's Usage: for an active snapshot, what its upper directory takes (allocated
    /// bytes, inodes); a view has none of its own; for a committed snapshot, its layer blob's
    /// size in the store and the number of entries in the layer (from its index).
    public func usage(_ key: String) throws -> SnapshotUsage {
        try transaction(.read) { metadata in
            let record = try Self.record(key, in: metadata)
            switch record.kind {
            case .active:
                return try DiskUsage.of(paths.upper(id: record.id))
            case .view:
                return SnapshotUsage(size: 0, inodes: 0)
            case .committed:
                guard let layer = record.layer else {
                    throw SnapshotError(.inconsistent, "snapshot \"\(key)\": committed without a layer")
                }
                let index: LayerIndex
                do { index = try cache.index(try layerBlob(layer, diffID: record.diffID)).index } catch let error as SnapshotError {
                    throw error
                } catch {
                    throw SnapshotError(.other, "snapshot \"\(key)\": cannot index layer \(layer.digest): \(error)")
                }
                return SnapshotUsage(size: layer.size, inodes: Int64(index.entryCount))
            }
        }
    }
}
