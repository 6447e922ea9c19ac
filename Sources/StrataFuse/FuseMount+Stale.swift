import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

extension FuseMount {
    /// What is mounted at `path`, if anything: its file system type, and whether it is a
    /// strata mount whose daemon died (every access answers ENOTCONN).
    public static func occupant(_ path: String) -> (fsType: String, stale: Bool)? {
        let target = absolute(path)
        guard let entry = MountTable.top(at: target) else { return nil }
        return (entry.fsType, entry.fsType == fsType && isStale(target))
    }
}
