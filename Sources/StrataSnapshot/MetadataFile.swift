import StrataOCI
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// metadata.json: read whole, written whole to a temporary file that is fsynced and renamed
/// over the old one (then the directory is fsynced), so after a crash it is either the old
/// state or the new one. Callers hold the store lock between load and save.
enum MetadataFile {
    static func load(_ paths: StorePaths) throws -> SnapshotMetadata {
        guard FileIO.exists(paths.metadata) else { return SnapshotMetadata() }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(paths.metadata) } catch {
            throw SnapshotError(.inconsistent, "\(paths.metadata): cannot read", wrapping: error)
        }
        let metadata: SnapshotMetadata
        do {
            metadata = try JSONCoding.decode(SnapshotMetadata.self, from: bytes, what: paths.metadata)
        } catch {
            throw SnapshotError(.inconsistent, "\(paths.metadata): not valid snapshot metadata: \(error)")
        }
        guard metadata.version == SnapshotMetadata.currentVersion else {
            throw SnapshotError(.inconsistent, "\(paths.metadata): version \(metadata.version) is not supported (expected \(SnapshotMetadata.currentVersion))")
        }
        return metadata
    }

    static func save(_ metadata: SnapshotMetadata, _ paths: StorePaths) throws {
        do {
            try FileIO.writeAtomically(paths.metadata, try JSONCoding.encode(metadata), mode: 0o600)
        } catch {
            throw SnapshotError(.other, "\(paths.metadata): cannot write", wrapping: error)
        }
    }
}

/// Test hook, like StrataCommit's: `STRATA_SNAPSHOT_CRASH_AFTER=layer|metadata` kills the
/// process with SIGKILL right after that step of `commit` (`layer`: the layer and chain image
/// are stored, metadata not yet written; `metadata`: written, the active directory not yet
/// removed), so tests can check that the store stays consistent.
enum MetadataCrashPoint: String {
    case layer, metadata

    static func reached(_ point: MetadataCrashPoint) {
        guard RuntimeSettings.current.snapshotCrashAfter == point.rawValue else { return }
        kill(getpid(), SIGKILL)
    }
}
