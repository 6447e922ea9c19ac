#if canImport(Glibc)
import Glibc
#endif

/// Why a mount could not be set up or torn down. `description` is one line naming the
/// mountpoint, fit to print before exiting non-zero.
public struct FuseError: Error, CustomStringConvertible, Equatable, Sendable {
    public enum Kind: Sendable, Equatable {
        case mountpointMissing
        case notADirectory
        case staleMount            // a dead daemon's mount answers ENOTCONN
        case inaccessible(Int32)   // stat failed otherwise
        case sessionFailed         // fuse_session_new refused the options
        case mountFailed
        case notMounted
        case notStrata(String)     // another file system type is mounted there
        case busy([Int32])         // in use by these processes (none found: /proc did not say)
        case unmountFailed(String)
        case serverFailed(Int32)   // the loop ended with an error before or during service
    }

    public let kind: Kind
    public let mountpoint: String

    public init(_ kind: Kind, mountpoint: String) {
        self.kind = kind
        self.mountpoint = mountpoint
    }

    public var description: String {
        switch kind {
        case .mountpointMissing: return "\(mountpoint): mountpoint does not exist"
        case .notADirectory: return "\(mountpoint): mountpoint is not a directory"
        case .staleMount: return "\(mountpoint): a stale mount is in the way (run `strata unmount \(mountpoint)`)"
        case .inaccessible(let code): return "\(mountpoint): cannot use as mountpoint: \(String(cString: strerror(code)))"
        case .sessionFailed: return "\(mountpoint): cannot create the FUSE session (bad mount options?)"
        case .mountFailed: return "\(mountpoint): FUSE mount failed (is /dev/fuse available, and are you root or is fusermount3 installed?)"
        case .notMounted: return "\(mountpoint): not mounted"
        case .notStrata(let type):
            return "\(mountpoint): not a strata mount (\(type) is mounted there); strata unmount only unmounts \(FuseMount.fsType) mounts"
        case .busy(let pids):
            let who = pids.isEmpty ? "the mount is busy" : "in use by PIDs " + pids.map(String.init).joined(separator: ", ")
            return "\(mountpoint): cannot unmount: EBUSY: \(who) (stop them first)"
        case .unmountFailed(let why): return "\(mountpoint): unmount failed: \(why)"
        case .serverFailed(let code): return "\(mountpoint): FUSE session ended with an error: \(String(cString: strerror(code)))"
        }
    }
}
