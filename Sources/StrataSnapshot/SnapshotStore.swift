#if canImport(Glibc)
import Glibc
#endif
import StrataCodec
import StrataCommit
import StrataIndex
import StrataOCI
import StrataSystem

/// A containerd-style snapshotter over Strata's lazy layers (see StorePaths for the files).
///
/// Every operation runs under the store lock: load metadata.json, check it, act, and write it
/// back whole by rename. Changes are ordered so that a crash at any point leaves only
/// leftovers (`ConsistencyReport.leftovers`, removed by gc), never a record pointing at
/// something missing: new resources (directories, blobs, tags) are made before the record
/// that names them, and a record is dropped before the resources it named.
public final class SnapshotStore {
    public let paths: StorePaths
    let mounter: SnapshotMounter
    /// Receives one line per warning (leftovers, inconsistencies a read-only command shows).
    public var warn: (String) -> Void = { _ in }

    public init(root: String, mounter: SnapshotMounter) {
        paths = StorePaths(root: root)
        self.mounter = mounter
    }

    /// What an operation does with an inconsistent state.
    enum Access {
        /// Reads only: problems become warnings.
        case read
        /// Creates or changes snapshots: problems are an error listing them.
        case change
    }

    /// Lock, load, check, run `body` (which may change `metadata`), save if changed.
    func transaction<T>(_ access: Access, _ body: (inout SnapshotMetadata) throws -> T) throws -> T {
        try StoreLock.withLock(paths) {
            var metadata = try MetadataFile.load(paths)
            let report = ConsistencyCheck.run(metadata, paths)
            if !report.isConsistent {
                if access == .change {
                    let shown = report.problems.prefix(5).joined(separator: "; ")
                    let more = report.problems.count > 5 ? " (and \(report.problems.count - 5) more)" : ""
                    throw SnapshotError(.inconsistent, "state \(paths.root) is inconsistent: \(shown)\(more); see strata snapshot check")
                }
                report.problems.forEach { warn("state \(paths.root): \($0)") }
            }
            let before = metadata
            let result = try body(&metadata)
            if metadata != before { try MetadataFile.save(metadata, paths) }
            return result
        }
    }

    /// The full report, for `strata snapshot check`: the state's consistency, and every
    /// committed snapshot's layer blob read in full against its digest and diff_id.
    public func check() throws -> ConsistencyReport {
        try StoreLock.withLock(paths) {
            let metadata = try MetadataFile.load(paths)
            var report = ConsistencyCheck.run(metadata, paths)
            report.problems += ConsistencyCheck.verifyLayers(metadata, paths)
            return report
        }
    }

    public func stat(_ key: String) throws -> SnapshotRecord {
        try transaction(.read) { metadata in try Self.record(key, in: metadata) }
    }

    /// containerd's Walk: every snapshot, by key.
    public func list() throws -> [(key: String, record: SnapshotRecord)] {
        try transaction(.read) { metadata in
            metadata.snapshots.sorted { $0.key < $1.key }.map { (key: $0.key, record: $0.value) }
        }
    }

    static func record(_ key: String, in metadata: SnapshotMetadata) throws -> SnapshotRecord {
        guard let record = metadata.snapshots[key] else { throw SnapshotError(.notFound, "snapshot \"\(key)\" does not exist") }
        return record
    }

    static func checkKey(_ key: String, what: String = "key") throws {
        guard !key.isEmpty, !key.contains(where: { $0.isNewline || $0 == "\0" }) else {
            throw SnapshotError(.other, "invalid snapshot \(what) \"\(key)\": empty or holds a newline")
        }
    }

    /// The image a snapshot on `parent` is mounted on: the parent's chain image by digest
    /// (exact even if its tag moved), or the empty image.
    func lowerReference(parent: String?, in metadata: SnapshotMetadata) throws -> String {
        guard let parent else { return "\(paths.layout):\(StorePaths.emptyImageTag)" }
        let record = try Self.record(parent, in: metadata)
        guard record.kind == .committed, let image = record.image else {
            throw SnapshotError(.failedPrecondition, "parent \"\(parent)\" is \(record.kind.rawValue), not committed")
        }
        return "\(paths.layout)@\(image.digest)"
    }

    /// The layer blobs of `key` and its ancestors, root first.
    func layers(of key: String?, in metadata: SnapshotMetadata) -> [Descriptor] {
        guard let key else { return [] }
        return metadata.chain(from: key).reversed().compactMap { metadata.snapshots[$0]?.layer }
    }

    var cache: LayerCache {
        get throws {
            do { return try LayerCache(directory: paths.cache) } catch {
                throw SnapshotError(.other, "cache \(paths.cache): \(error)")
            }
        }
    }

    /// The store's copy of a layer blob; `diffID` is checked whenever it is indexed or its index used.
    func layerBlob(_ layer: Descriptor, diffID: Digest?, number: Int? = nil) throws -> LayerBlob {
        let format: LayerFormat
        do { format = try MediaType.layerFormat(layer.mediaType) } catch {
            throw SnapshotError(.other, "layer \(layer.digest): \(error)")
        }
        return LayerBlob(path: "\(paths.layout)/blobs/sha256/\(layer.digest.hex)", descriptor: layer, format: format,
                         diffID: diffID.map { DiffIDClaim(number: number, digest: $0) })
    }

    static var now: String { Timestamp.rfc3339(Int64(time(nil))) }
}
