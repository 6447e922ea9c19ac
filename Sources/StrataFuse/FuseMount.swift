#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// The mount table as this process sees it, and unmounting — also of a stale mount left by a
/// dead daemon, whose every access answers ENOTCONN. Paths are compared lexically against
/// /proc/self/mountinfo; only the stale-mount probe (statvfs) reaches the mounted tree.
public enum FuseMount {
    /// Whether `path` is a mount point (of any filesystem).
    public static func isMounted(_ path: String) -> Bool {
        MountTable.isMountPoint(absolute(path))
    }

    /// The file system type strata mounts show in mountinfo.
    public static let fsType = "fuse.strata"

    /// Unmounts the strata mount at `path`, never lazily while it is live: anything else
    /// mounted there (a tmpfs, /proc) is an error naming its type, and a mount some process
    /// still uses (in any mount namespace) is refused naming the PIDs. A stale mount (its
    /// daemon died, every access answers ENOTCONN) serves nobody and is cleared, lazily if
    /// it must be. Root calls umount2; others fusermount3.
    public static func unmount(_ path: String) throws {
        let target = absolute(path)
        let table: [MountEntry]
        do { table = try MountTable.table() } catch {
            // Without it, what is mounted there cannot be told: leave it.
            throw FuseError(.unmountFailed("cannot tell what is mounted there: \(error)"), mountpoint: target)
        }
        guard let entry = MountTable.top(at: target, in: table) else { throw FuseError(.notMounted, mountpoint: target) }
        guard entry.fsType == fsType else { throw FuseError(.notStrata(entry.fsType), mountpoint: target) }
        // Users first: a container's root is a copy of the mount in its own namespace, which
        // would keep serving after this one went, so umount2 alone would not see it busy.
        var users = MountUsers.processes(major: entry.major, minor: entry.minor)
        if users.isEmpty {
            if geteuid() == 0 {
                do throws(SystemError) { try FileSystemMount.unmount(target); return } catch where error.code == EBUSY {} catch {
                    throw FuseError(.unmountFailed(error.message), mountpoint: target)
                }
            } else {
                if run("/usr/bin/fusermount3", ["-u", target]) == 0 { return }
                guard MountTable.top(at: target) == entry else { return }
            }
            // Busy after all: a process came meanwhile, or one /proc does not show.
            users = MountUsers.processes(major: entry.major, minor: entry.minor)
        }
        if isStale(target) { return try clearStale(target) }
        throw FuseError(.busy(users), mountpoint: target)
    }

    /// A dead daemon's mount: the kernel answers ENOTCONN at once, asking no one. statvfs
    /// (statfs), unlike stat, is never answered from the attribute cache. It runs on a
    /// thread of its own: a live daemon that does not answer within `seconds` is not dead.
    static func isStale(_ target: String, seconds: Int = 5) -> Bool {
        // Shared with the probing thread, which may outlive this call. @unchecked: `stale` is
        // written before sem_post and read only after sem_wait (or sem_timedwait) succeeded.
        final class Probe: @unchecked Sendable {
            let done = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
            var stale = false
            init() { sem_init(done, 0, 0) }
            deinit { sem_destroy(done); done.deallocate() }
        }
        let probe = Probe()
        let thread = Thread.start {
            do throws(SystemError) { _ = try FileSystemMount.statistics(target) } catch { probe.stale = error.code == ENOTCONN }
            sem_post(probe.done)
        }
        pthread_detach(thread.id)
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += seconds
        while sem_timedwait(probe.done, &deadline) != 0 {
            if errno != EINTR { return false }
        }
        return probe.stale
    }

    /// Nothing serves a stale mount, so a lazy detach loses no one's writes.
    private static func clearStale(_ target: String) throws {
        if geteuid() == 0 {
            let first: SystemError, second: SystemError
            do { try FileSystemMount.unmount(target); return } catch { first = error }
            do { try FileSystemMount.unmount(target, detach: true); return } catch { second = error }
            throw FuseError(.unmountFailed("stale mount: \(first.message); lazy: \(second.message)"), mountpoint: target)
        }
        if run("/usr/bin/fusermount3", ["-u", target]) == 0 { return }
        if run("/usr/bin/fusermount3", ["-uz", target]) == 0 { return }
        throw FuseError(.unmountFailed("stale mount: fusermount3 -u and -uz failed"), mountpoint: target)
    }

    // MARK: - Helpers

    /// An absolute, lexically normalised path. realpath() would stat the mount point, which
    /// fails with ENOTCONN on a stale mount.
    static func absolute(_ path: String) -> String {
        var parts: [Substring] = []
        for part in FileIO.absolute(path).split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Runs a helper program and returns its exit status (-1 if it could not start).
    static func run(_ program: String, _ arguments: [String]) -> Int32 {
        guard let child = try? ChildProcess.spawn(program, arguments), let status = try? child.wait() else { return -1 }
        return status.exitCode ?? -1
    }
}
