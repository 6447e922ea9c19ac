import StrataOCI
import StrataSystem

extension SnapshotStore {
    /// containerd's Prepare: an active (writable) snapshot `key` on the committed `parent`, or
    /// on nothing. Only directories are made; `mounts` mounts it.
    public func prepare(_ key: String, parent: String?, labels: [String: String] = [:]) throws {
        try create(key, parent: parent, kind: .active, labels: labels)
    }

    /// containerd's View: a read-only snapshot `key` of the committed `parent`.
    public func view(_ key: String, parent: String, labels: [String: String] = [:]) throws {
        try create(key, parent: parent, kind: .view, labels: labels)
    }

    private func create(_ key: String, parent: String?, kind: SnapshotKind, labels: [String: String]) throws {
        try Self.checkKey(key)
        try transaction(.change) { metadata in
            guard metadata.snapshots[key] == nil else {
                throw SnapshotError(.alreadyExists, "snapshot \"\(key)\" already exists")
            }
            _ = try lowerReference(parent: parent, in: metadata)   // the parent exists and is committed
            if parent == nil { try ensureLayout() }
            let id = metadata.nextID
            // Directories before the record: a crash leaves an unowned directory (a leftover).
            do {
                try TreeRemoval.remove(paths.directory(id: id))   // left by a crash before the record
                if kind == .active {
                    try FileIO.makeDirectories(paths.upper(id: id))
                    try FileIO.makeDirectories(paths.work(id: id))
                }
                try FileIO.makeDirectories(paths.rootfs(id: id))
            } catch let error as SnapshotError {
                throw error
            } catch {
                throw SnapshotError(.other, "snapshot \"\(key)\": cannot create \(paths.directory(id: id))", wrapping: error)
            }
            metadata.nextID += 1
            metadata.snapshots[key] = SnapshotRecord(id: id, kind: kind, parent: parent, created: Self.now,
                                                     labels: labels.isEmpty ? nil : labels)
        }
    }

    /// The store's layout with its empty image, made on first use.
    @discardableResult
    func ensureLayout() throws -> ImageLayoutWriter {
        let writer = try ImageLayoutWriter(path: paths.layout)
        _ = try ChainImage.ensureEmpty(writer)
        return writer
    }

    /// containerd's Remove. Refused while a snapshot has children. An active snapshot or view
    /// still mounted is unmounted first (stop its containers before). A committed snapshot's
    /// layer stays in the layout until `strata gc` finds nothing else uses it.
    public func remove(_ key: String) throws {
        try transaction(.read) { metadata in
            let record = try Self.record(key, in: metadata)
            let children = metadata.children(of: key)
            guard children.isEmpty else {
                let list = children.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ")
                throw SnapshotError(.failedPrecondition, "snapshot \"\(key)\" has children (\(list)); remove them first")
            }
            let rootfs = paths.rootfs(id: record.id)
            if record.kind != .committed, mounter.isMounted(rootfs) {
                do { try mounter.unmount(rootfs) } catch {
                    throw SnapshotError(.other, "snapshot \"\(key)\": cannot unmount \(rootfs): \(error)")
                }
            }
            // The record goes first (saved right here), then what it owned: a crash in
            // between leaves a leftover, never a record of something half removed.
            metadata.snapshots[key] = nil
            try MetadataFile.save(metadata, paths)
            switch record.kind {
            case .committed:
                try LayoutTags.remove(layout: paths.layout) { $0 == record.tag }
            case .active, .view:
                // Removed already: a directory that will not go is a leftover for gc.
                do { try TreeRemoval.remove(paths.directory(id: record.id)) } catch {
                    warn("snapshot \"\(key)\" removed, but \(paths.directory(id: record.id)) stays until gc: \(error)")
                }
            }
        }
    }
}
