#if canImport(Glibc)
import Glibc
#endif
import StrataIndex
import StrataOCI
import StrataSystem
import StrataUnion

/// What `strata gc` did.
public struct GCReport: Sendable {
    public var blobsRemoved = 0
    public var blobBytes: Int64 = 0
    public var cacheFilesRemoved = 0
    public var cacheBytes: Int64 = 0
    public var tagsRemoved: [String] = []
    public var directoriesRemoved: [String] = []
    /// Files evicted to get the cache under its size limit (least recently used first).
    public var evicted = 0
    public var evictedBytes: Int64 = 0
    /// The cache's size afterwards.
    public var cacheSize: Int64 = 0
}

extension SnapshotStore {
    /// Removes what nothing references, then evicts cache files beyond `cacheMax` bytes.
    ///
    /// Roots: every snapshot's layer and chain image, and every manifest tagged in
    /// ROOT/layout other than an orphaned `snap-<id>` tag (those are dropped first), followed
    /// through indexes to manifests, configs and layers. Unreferenced blobs go; so do index
    /// and decoded files in ROOT/cache of layers no longer in the layout, snapshot
    /// directories no snapshot owns, and temporary files older than an hour (younger ones may
    /// belong to a writer at work). Refused on an inconsistent state: a record that lost its
    /// parent could otherwise lose its layers too.
    ///
    /// `cacheDirectory` (default ROOT/cache) is where the size limit applies; a cache other
    /// than the store's own is only trimmed by age, never by reference, since other images
    /// may use it.
    public func collectGarbage(cacheMax: Int64? = nil, cacheDirectory: String? = nil) throws -> GCReport {
        try transaction(.change) { metadata in
            var report = GCReport()
            let ids = Set(metadata.snapshots.values.map(\.id))
            for name in FileIO.directoryEntries(paths.snapshots) {
                guard UInt64(name).map({ !ids.contains($0) }) ?? true else { continue }
                let dir = "\(paths.snapshots)/\(name)"
                for sub in ["rootfs", "lower"] where mounter.isMounted("\(dir)/\(sub)") {
                    try? mounter.unmount("\(dir)/\(sub)")
                }
                try TreeRemoval.remove(dir)
                report.directoriesRemoved.append(dir)
            }

            var usedLayers = Set<String>()
            if FileIO.exists(paths.layout + "/oci-layout") {
                let owned = Dictionary(metadata.snapshots.values.filter { $0.kind == .committed }.map { ($0.tag, $0.image?.digest) },
                                       uniquingKeysWith: { a, _ in a })
                let layout = try ImageLayout(path: paths.layout)
                let before = try layout.index()
                let orphans = Set(before.manifests.compactMap { d -> String? in
                    guard let name = d.refName, name.hasPrefix("snap-"), owned[name] != .some(d.digest) else { return nil }
                    return name
                })
                if !orphans.isEmpty {
                    report.tagsRemoved = try LayoutTags.remove(layout: paths.layout) { orphans.contains($0) }
                }
                var reachable = Set<String>()
                for record in metadata.snapshots.values {
                    if let layer = record.layer { reachable.insert(layer.digest.hex); usedLayers.insert(layer.digest.hex) }
                    if let image = record.image { try mark(image, in: layout, reachable: &reachable, layers: &usedLayers) }
                }
                for d in try layout.index().manifests {
                    try mark(d, in: layout, reachable: &reachable, layers: &usedLayers)
                }
                for name in FileIO.directoryEntries(paths.layout + "/blobs/sha256") {
                    let path = paths.layout + "/blobs/sha256/" + name
                    if name.hasPrefix(".") {
                        if Self.isStale(path) { report.blobBytes += Self.remove(path); report.blobsRemoved += 1 }
                    } else if !reachable.contains(name) {
                        report.blobBytes += Self.remove(path)
                        report.blobsRemoved += 1
                    }
                }
            }

            // The store's own cache holds only the store's layers: the rest is garbage. A file
            // named for no layer is a temporary (or a stray): removed once stale.
            let cache = LayerCache(existing: paths.cache)
            for entry in cache.entries([.index, .data, .diffID, .tree]) {
                let garbage = switch (entry.key, entry.kind) {
                case (nil, _): Self.isStale(modified: entry.modified)
                // A merged tree is garbage once any layer of its chain is.
                case (_, .tree): !(MergedTree.layerDigests(path: entry.path)?.allSatisfy(usedLayers.contains) ?? false)
                case (let layer?, _): !usedLayers.contains(layer)
                }
                guard garbage else { continue }
                let removed = cache.remove(entry)
                // A layer's verified diff_id goes with its index (a few bytes: not counted).
                if entry.kind != .diffID {
                    report.cacheBytes += removed ? entry.bytes : 0
                    report.cacheFilesRemoved += 1
                }
            }

            let cacheDir = cacheDirectory ?? paths.cache
            var inUse = Set<String>()
            for record in metadata.snapshots.values where record.kind != .committed {
                if mounter.isMounted(paths.rootfs(id: record.id)) {
                    layers(of: record.parent, in: metadata).forEach { inUse.insert($0.digest.hex) }
                }
            }
            let eviction = CacheEviction.run(cache: LayerCache(existing: cacheDir), limit: cacheMax, keep: inUse)
            report.evicted = eviction.removed
            report.evictedBytes = eviction.removedBytes
            report.cacheSize = eviction.remainingBytes
            return report
        }
    }

    /// Marks `d` and everything it references (index → manifests → config and layers).
    private func mark(_ d: Descriptor, in layout: ImageLayout, reachable: inout Set<String>, layers: inout Set<String>,
                      depth: Int = 0) throws {
        guard d.digest.algorithm == "sha256", reachable.insert(d.digest.hex).inserted, depth < 8 else { return }
        guard layout.blobExists(d.digest) else { return }
        if MediaType.isIndex(d.mediaType) {
            let index = try JSONCoding.decode(ImageIndex.self, from: try layout.readVerifiedBlob(d), what: "index \(d.digest)")
            for child in index.manifests { try mark(child, in: layout, reachable: &reachable, layers: &layers, depth: depth + 1) }
        } else if MediaType.isManifest(d.mediaType) {
            let manifest = try JSONCoding.decode(Manifest.self, from: try layout.readVerifiedBlob(d), what: "manifest \(d.digest)")
            reachable.insert(manifest.config.digest.hex)
            for layer in manifest.layers {
                reachable.insert(layer.digest.hex)
                layers.insert(layer.digest.hex)
            }
        }
    }

    /// A temporary file no writer can still be filling: untouched for an hour.
    static func isStale(_ path: String) -> Bool {
        guard let st = try? FileDescriptor.currentDirectory.stat(at: path) else { return false }
        return isStale(modified: st.st_mtim.tv_sec)
    }

    static func isStale(modified: Int) -> Bool { time(nil) - modified > 3600 }

    /// Unlinks `path`; its size if it was removed.
    static func remove(_ path: String) -> Int64 {
        let here = FileDescriptor.currentDirectory
        guard let st = try? here.stat(at: path), (try? here.unlink(at: path)) != nil else { return 0 }
        return Int64(st.st_blocks) * 512
    }
}
