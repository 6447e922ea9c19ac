#if canImport(Glibc)
import Glibc
#endif
import StrataIndex
import StrataOCI
import StrataSystem

/// What the store's state on disk says about itself, checked at the start of every command.
///
/// `problems` contradict the metadata (a parent missing or not committed, a cycle, a layer or
/// chain image gone, an active snapshot without its directory): commands that create or
/// change snapshots refuse to run on such a state, so they never build on it.
/// `leftovers` are what an interrupted operation leaves and `strata gc` removes (a snapshot
/// directory or a `snap-<id>` tag no snapshot owns): reported, harmless.
public struct ConsistencyReport: Sendable {
    public var problems: [String] = []
    public var leftovers: [String] = []
    public var isConsistent: Bool { problems.isEmpty }
}

enum ConsistencyCheck {
    static func run(_ metadata: SnapshotMetadata, _ paths: StorePaths) -> ConsistencyReport {
        var report = ConsistencyReport()
        let layout = try? ImageLayout(path: paths.layout)
        if layout == nil && !metadata.snapshots.isEmpty {
            report.problems.append("\(paths.layout): missing or not an OCI image layout, but \(metadata.snapshots.count) snapshots are recorded")
        }
        var ids: [UInt64: String] = [:]
        for (key, record) in metadata.snapshots.sorted(by: { $0.key < $1.key }) {
            func problem(_ text: String) { report.problems.append("snapshot \"\(key)\": \(text)") }
            if let other = ids[record.id] { problem("id \(record.id) is also that of \"\(other)\"") }
            ids[record.id] = key
            if record.id >= metadata.nextID { problem("id \(record.id) is not below nextID \(metadata.nextID)") }
            if let parent = record.parent {
                if let p = metadata.snapshots[parent] {
                    if p.kind != .committed { problem("parent \"\(parent)\" is \(p.kind.rawValue), not committed") }
                } else {
                    problem("parent \"\(parent)\" does not exist")
                }
            }
            switch record.kind {
            case .committed:
                guard let layer = record.layer, record.diffID != nil, let image = record.image else {
                    problem("committed but its layer, diff ID or chain image is not recorded")
                    continue
                }
                if let layout {
                    if !layout.blobExists(layer.digest) { problem("layer blob \(layer.digest) is missing from \(paths.layout)") }
                    if !layout.blobExists(image.digest) { problem("chain image manifest \(image.digest) is missing from \(paths.layout)") }
                }
            case .active:
                if !FileIO.isDirectory(paths.upper(id: record.id)) { problem("upper directory \(paths.upper(id: record.id)) is missing") }
            case .view:
                if record.parent == nil { problem("a view without a parent") }
            }
        }
        // Cycles: follow parents from each key; more steps than snapshots means a loop.
        for key in metadata.snapshots.keys.sorted() {
            var seen: Set<String> = [key]
            var current = metadata.snapshots[key]?.parent
            while let c = current, let record = metadata.snapshots[c] {
                if !seen.insert(c).inserted {
                    report.problems.append("snapshot \"\(key)\": its parents form a cycle through \"\(c)\"")
                    break
                }
                current = record.parent
            }
        }
        report.leftovers = leftovers(metadata, paths, layout: layout, ids: Set(ids.keys))
        return report
    }

    /// Reads every committed snapshot's layer blob in full (each blob once): its digest, its
    /// tar and its diff_id must be what the snapshot records. Slow (it decodes every layer),
    /// so only `strata snapshot check` runs it, not every command.
    static func verifyLayers(_ metadata: SnapshotMetadata, _ paths: StorePaths) -> [String] {
        var found: [String] = []
        var verified: [String: Result<String, Error>] = [:]   // blob hex → diff_id hex
        for (key, record) in metadata.snapshots.sorted(by: { $0.key < $1.key }) where record.kind == .committed {
            guard let layer = record.layer, let diffID = record.diffID else { continue }
            let path = "\(paths.layout)/blobs/sha256/\(layer.digest.hex)"
            guard layer.digest.algorithm == "sha256", FileIO.exists(path) else { continue }   // reported by `run`
            let result = verified[layer.digest.hex] ?? Result {
                let format = try MediaType.layerFormat(layer.mediaType)
                return try IndexBuilder.buildVerified(LayerBlob(path: path, descriptor: layer, format: format)).diffIDHex
            }
            verified[layer.digest.hex] = result
            switch result {
            case .success(let actual):
                if diffID.algorithm != "sha256" || diffID.hex != actual {
                    found.append("snapshot \"\(key)\": layer \(layer.digest): diff_id mismatch: recorded \(diffID), the uncompressed layer hashes to sha256:\(actual)")
                }
            case .failure(let error):
                found.append("snapshot \"\(key)\": layer blob \(path) fails verification: \(error)")
            }
        }
        return found
    }

    static func leftovers(_ metadata: SnapshotMetadata, _ paths: StorePaths, layout: ImageLayout?, ids: Set<UInt64>) -> [String] {
        var found: [String] = []
        for name in FileIO.directoryEntries(paths.snapshots) {
            guard let id = UInt64(name), ids.contains(id) else {
                found.append("\(paths.snapshots)/\(name): belongs to no snapshot")
                continue
            }
        }
        if let index = try? layout?.index() {
            let committed = Dictionary(metadata.snapshots.values.filter { $0.kind == .committed }.map { ($0.tag, $0) },
                                       uniquingKeysWith: { a, _ in a })
            for d in index.manifests {
                guard let name = d.refName, name.hasPrefix("snap-") else { continue }
                if committed[name]?.image?.digest != d.digest {
                    found.append("tag \(name) in \(paths.layout) belongs to no snapshot")
                }
            }
        }
        return found
    }
}
