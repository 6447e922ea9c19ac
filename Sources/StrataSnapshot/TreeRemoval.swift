import StrataSystem

/// `rm -rf` for a snapshot directory (`FileTree`): an upper holds whatever a container wrote
/// (names that are not UTF-8, read-only directories, device whiteouts). Never crosses into
/// another mount: a mountpoint still mounted is an error, not a descent into the mounted tree.
enum TreeRemoval {
    static func remove(_ path: String) throws {
        do { try FileTree.remove(path) } catch {
            switch error {
            case .mountPoint(let point):
                throw SnapshotError(.other, "\(point): a mount point; unmount it before removing")
            case .system(let cause):
                let verb = ["fstatat": "stat", "openat": "open", "unlinkat": "remove"][cause.operation] ?? "read"
                throw SnapshotError(.other, "\(cause.path ?? path): cannot \(verb)", cause: cause)
            }
        }
    }
}
