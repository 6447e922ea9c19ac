import StrataCodec
import StrataCommit
import StrataOCI
import StrataSystem

extension SnapshotStore {
    public struct CommitOptions: Sendable {
        public var compression: LayerCompression = .gzip
        public var message: String?
        public var labels: [String: String] = [:]
        public init() {}
    }

    /// containerd's Commit: the active snapshot `key`'s changes become the committed snapshot
    /// `name` (same parent), and `key` is gone.
    ///
    /// The upper is written as a layer with StrataCommit (the same bytes `strata commit`
    /// writes) into ROOT/layout, with a chain image tagged `snap-<id>`, and the layer is indexed
    /// into ROOT/cache right away, as a pulled layer would be on first mount. A mounted `key` is
    /// unmounted first: stop its containers before committing.
    ///
    /// The store stays locked throughout, so nothing else changes the store meanwhile.
    @discardableResult
    public func commit(_ name: String, key: String, options: CommitOptions = CommitOptions()) throws -> SnapshotRecord {
        try Self.checkKey(name, what: "name")
        return try transaction(.change) { metadata in
            guard metadata.snapshots[name] == nil else {
                throw SnapshotError(.alreadyExists, "snapshot \"\(name)\" already exists")
            }
            let active = try Self.record(key, in: metadata)
            guard active.kind == .active else {
                throw SnapshotError(.failedPrecondition, "snapshot \"\(key)\" is \(active.kind.rawValue), not active: only an active snapshot can be committed")
            }
            let rootfs = paths.rootfs(id: active.id)
            if mounter.isMounted(rootfs) {
                do { try mounter.unmount(rootfs) } catch {
                    throw SnapshotError(.other, "snapshot \"\(key)\": cannot unmount \(rootfs) to commit it: \(error)")
                }
            }
            let base = try lowerReference(parent: active.parent, in: metadata)
            try ensureLayout()
            let layer = try writeLayer(key: key, record: active, base: base, compression: options.compression)

            let id = metadata.nextID
            let result: CommitResult
            do {
                let baseImage = try ImageResolver.resolve(reference: base)
                result = try ImageCommitter.publish(layer, base: baseImage, tag: SnapshotRecord.tag(id: id),
                                                    message: options.message, created: Self.now)
            } catch {
                ImageCommitter.discard(layer)
                throw SnapshotError(.other, "snapshot \"\(key)\": storing its layer failed: \(error)")
            }
            // Indexed now, like an image layer: children mount without reading it again.
            // A failure here is not fatal (the first mount indexes it), but it is said.
            do { _ = try cache.index(try layerBlob(result.layer, diffID: result.diffID)) } catch {
                warn("snapshot \"\(name)\": layer \(result.layer.digest) not indexed yet: \(error)")
            }
            MetadataCrashPoint.reached(.layer)

            var image = result.manifest
            image.annotations = nil
            metadata.nextID = id + 1
            metadata.snapshots[key] = nil
            metadata.snapshots[name] = SnapshotRecord(id: id, kind: .committed, parent: active.parent, created: Self.now,
                                                      labels: options.labels.isEmpty ? nil : options.labels,
                                                      layer: result.layer, diffID: result.diffID, image: image)
            try MetadataFile.save(metadata, paths)
            MetadataCrashPoint.reached(.metadata)
            // Committed already: a directory that will not go is a leftover for gc, not a failure.
            do { try TreeRemoval.remove(paths.directory(id: active.id)) } catch {
                warn("snapshot \"\(name)\" committed, but \(paths.directory(id: active.id)) stays until gc: \(error)")
            }
            return metadata.snapshots[name]!
        }
    }

    /// The upper as a pending layer; the parent's chain is mounted read-only beside it only
    /// when the upper holds a renamed directory or a metacopy file (see ImageCommitter).
    private func writeLayer(key: String, record: SnapshotRecord, base: String, compression: LayerCompression) throws -> PendingLayer {
        let upper = paths.upper(id: record.id)
        do {
            var lower: String?
            if try ImageCommitter.needsLower(upper: upper) {
                lower = paths.lower(id: record.id)
                try FileIO.makeDirectories(lower!)
                try mounter.mount(image: base, at: lower!, upper: nil, work: nil, cache: paths.cache)
            }
            defer {
                if let lower {
                    do { try mounter.unmount(lower) } catch {
                        warn("snapshot \"\(key)\": could not unmount the temporary lower \(lower): \(error)")
                    }
                }
            }
            return try ImageCommitter.writeLayer(upper: upper, lowerRoot: lower, layoutPath: paths.layout,
                                                 compression: compression)
        } catch {
            throw SnapshotError(.other, "snapshot \"\(key)\": writing its layer failed: \(error)")
        }
    }
}
