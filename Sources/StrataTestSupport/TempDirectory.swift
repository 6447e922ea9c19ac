#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A fresh directory `/tmp/strata-test-XXXXXX` removed with everything in it when the
/// object goes away. scripts/test relies on the prefix to clean up after a crashed run.
/// ARC may release an object after its last use, before the end of the scope: keep it
/// alive with `defer { withExtendedLifetime(temp) {} }` while its path is still in use.
public final class TempDirectory {
    public let path: String

    /// `STRATA_TEST_TMP` moves the parent away from /tmp (e.g. to a filesystem with xattrs).
    public init(prefix: String = "strata-test-") throws {
        path = try FileIO.makeTemporaryDirectory(in: TempDirectory.parentDirectory(), prefix: prefix)
    }

    /// A path inside the directory (not created).
    public func child(_ name: String) -> String { path + "/" + name }

    /// Creates a subdirectory (and its parents) and returns its path.
    @discardableResult
    public func makeDirectory(_ name: String) throws -> String {
        let p = child(name)
        try FileIO.makeDirectories(p)
        return p
    }

    deinit { try? TempDirectory.remove(path) }

    /// Unmounts whatever is still mounted below `path`, then removes it. Refuses to
    /// delete while something stays mounted: rm must never walk into a mounted tree.
    public static func remove(_ path: String) throws {
        guard FileIO.exists(path) else { return }
        for mountPoint in MountTable.mounts(under: path) {
            try? Mounts.forceUnmount(mountPoint)
        }
        let stillMounted = MountTable.mounts(under: path)
        if !stillMounted.isEmpty {
            throw SystemError(code: EBUSY, operation: "remove (still mounted: \(stillMounted.joined(separator: ", ")))", path: path)
        }
        try Command.check("/bin/rm", ["-rf", "--one-file-system", "--", path], timeout: 300)
    }

    static func parentDirectory() -> String {
        if let value = getenv("STRATA_TEST_TMP") {
            let dir = String(cString: value)
            if !dir.isEmpty { return dir }
        }
        return "/tmp"
    }
}
