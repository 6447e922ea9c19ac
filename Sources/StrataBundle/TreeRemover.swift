import StrataSystem

/// `rm -rf --one-file-system` for what a bundle owns (its upper), by `FileTree`: symlinks are
/// removed, never followed, and a directory on another filesystem (something mounted inside
/// the upper) stops the removal instead of being emptied.
public enum TreeRemover {
    public static func remove(_ path: String) throws(BundleError) {
        do { try FileTree.remove(path) } catch {
            switch error {
            case .mountPoint(let point): throw BundleError("cannot remove \(point): another filesystem is mounted there")
            case .system(let cause): throw BundleError("cannot remove \(cause.subject)", cause: cause)
            }
        }
    }
}
