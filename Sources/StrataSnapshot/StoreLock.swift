#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// An exclusive flock(2) on ROOT/lock for the length of one operation. Processes, not
/// threads, are what run concurrently here (one `strata snapshot` each), and flock is
/// released by the kernel when a process dies, so a crash never leaves the store locked.
enum StoreLock {
    static func withLock<T>(_ paths: StorePaths, _ body: () throws -> T) throws -> T {
        do { try FileIO.makeDirectories(paths.root, mode: 0o700) } catch {
            throw SnapshotError(.other, "state directory \(paths.root): cannot create", wrapping: error)
        }
        let fd: FileDescriptor
        do { fd = try FileDescriptor.openLocked(paths.lock, O_RDWR | O_CREAT, mode: 0o600) } catch {
            throw SnapshotError(.other, "\(paths.lock): cannot \(error.operation == "open" ? "open" : "lock")", cause: error)
        }
        defer { fd.close() }
        return try body()
    }
}
