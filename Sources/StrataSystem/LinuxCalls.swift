internal import CLinux
#if canImport(Glibc)
import Glibc
#endif

/// The Linux calls and constants Swift's Glibc module lacks (`<sys/xattr.h>` is not in it;
/// renameat2, fallocate, pipe2, statx, O_PATH... need _GNU_SOURCE), declared for real by the
/// `CLinux` module (Sources/CLinux/shim.h), which only this file imports. Every module of the project reaches them here.
///
/// The calls are thin: each returns what the C call returns (-1 with errno set on failure), so
/// callers keep their own errno handling (FSError in the upper, SystemError elsewhere). The
/// size-then-fetch dance of the xattr queries is here once, in `sizedXattrQuery`.
public enum LinuxCalls {
    // MARK: Constants

    /// O_PATH: a descriptor that only names an object (no read, no write; any file type).
    public static let openPath: Int32 = strata_O_PATH
    /// O_NOATIME.
    public static let openNoAccessTime: Int32 = strata_O_NOATIME
    /// O_TMPFILE (includes O_DIRECTORY).
    public static let openTemporaryFile: Int32 = strata_O_TMPFILE
    /// AT_EMPTY_PATH: the *at call acts on the descriptor itself when the path is "".
    public static let atEmptyPath: Int32 = strata_AT_EMPTY_PATH
    public static let renameNoReplace: UInt32 = strata_RENAME_NOREPLACE
    public static let renameExchange: UInt32 = strata_RENAME_EXCHANGE
    public static let renameWhiteout: UInt32 = strata_RENAME_WHITEOUT
    public static let xattrCreate: Int32 = strata_XATTR_CREATE
    public static let xattrReplace: Int32 = strata_XATTR_REPLACE
    public static let fallocateKeepSize: Int32 = strata_FALLOC_FL_KEEP_SIZE
    public static let fallocatePunchHole: Int32 = strata_FALLOC_FL_PUNCH_HOLE
    /// AT_STATX_FORCE_SYNC: statx asks the file system, not the kernel's cached attributes.
    public static let statxForceSync: Int32 = strata_AT_STATX_FORCE_SYNC
    public static let statxBasicStats: UInt32 = strata_STATX_BASIC_STATS
    /// AT_STATX_DONT_SYNC (linux/fcntl.h): cached attributes only, no file system asked.
    public static let statxDontSync: Int32 = 0x4000

    // MARK: Files

    /// renameat2(2), through the system call. 0, or -1 with errno.
    @inline(__always)
    public static func renameat2(_ fromDir: Int32, _ from: UnsafePointer<CChar>, _ toDir: Int32, _ to: UnsafePointer<CChar>,
                                 _ flags: UInt32) -> Int32 {
        strata_renameat2(fromDir, from, toDir, to, flags)
    }

    /// fallocate(2). 0, or -1 with errno.
    @inline(__always)
    public static func fallocate(_ fd: Int32, _ mode: Int32, _ offset: Int64, _ length: Int64) -> Int32 {
        strata_fallocate(fd, mode, offset, length)
    }

    /// statx(2); `buffer` is raw (`statxSize` bytes at least). 0, or -1 with errno.
    @inline(__always)
    public static func statx(_ dirfd: Int32, _ path: UnsafePointer<CChar>, _ flags: Int32, _ mask: UInt32,
                             _ buffer: UnsafeMutableRawPointer) -> Int32 {
        strata_statx(dirfd, path, flags, mask, buffer)
    }

    public static let statxSize = Int(strata_statx_size)

    // MARK: Credentials of the calling thread alone (glibc's wrappers change every thread)

    public static func threadSetresuid(_ real: UInt32, _ effective: UInt32, _ saved: UInt32) -> Int32 {
        strata_thread_setresuid(real, effective, saved)
    }

    public static func threadSetresgid(_ real: UInt32, _ effective: UInt32, _ saved: UInt32) -> Int32 {
        strata_thread_setresgid(real, effective, saved)
    }

    public static func threadSetgroups(_ groups: [UInt32]) -> Int32 {
        groups.withUnsafeBufferPointer { strata_thread_setgroups(groups.count, $0.baseAddress) }
    }

    // MARK: Scheduling

    /// Sets the calling thread's nice value (on Linux it is per thread, and `who` 0 is the
    /// caller alone; threads it starts inherit it). 0, or -1 with errno.
    public static func setThreadNice(_ value: Int32) -> Int32 {
        setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, value)
    }

    // MARK: Pipes

    /// posix_spawn's flag for a new session (setsid in the child).
    public static let spawnSetsid: Int16 = strata_POSIX_SPAWN_SETSID

    /// pipe2(2). 0, or -1 with errno.
    @inline(__always)
    public static func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 {
        strata_pipe2(fds, flags)
    }

    /// pipe2(2), errno thrown.
    public static func pipe2(flags: Int32) throws(SystemError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        if fds.withUnsafeMutableBufferPointer({ strata_pipe2($0.baseAddress!, flags) }) != 0 {
            throw SystemError(code: errno, operation: "pipe2")
        }
        return (fds[0], fds[1])
    }

    // MARK: Extended attributes (-1 with errno on failure; sizes in bytes)

    @inline(__always)
    public static func getxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int {
        strata_getxattr(path, name, value, size)
    }

    @inline(__always)
    public static func lgetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                 _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int {
        strata_lgetxattr(path, name, value, size)
    }

    @inline(__always)
    public static func fgetxattr(_ fd: Int32, _ name: UnsafePointer<CChar>, _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int {
        strata_fgetxattr(fd, name, value, size)
    }

    @inline(__always)
    public static func setxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                _ value: UnsafeRawPointer?, _ size: Int, _ flags: Int32) -> Int32 {
        strata_setxattr(path, name, value, size, flags)
    }

    @inline(__always)
    public static func lsetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>,
                                 _ value: UnsafeRawPointer?, _ size: Int, _ flags: Int32) -> Int32 {
        strata_lsetxattr(path, name, value, size, flags)
    }

    @inline(__always)
    public static func fsetxattr(_ fd: Int32, _ name: UnsafePointer<CChar>, _ value: UnsafeRawPointer?, _ size: Int,
                                 _ flags: Int32) -> Int32 {
        strata_fsetxattr(fd, name, value, size, flags)
    }

    @inline(__always)
    public static func listxattr(_ path: UnsafePointer<CChar>, _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        strata_listxattr(path, list, size)
    }

    @inline(__always)
    public static func llistxattr(_ path: UnsafePointer<CChar>, _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        strata_llistxattr(path, list, size)
    }

    @inline(__always)
    public static func flistxattr(_ fd: Int32, _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        strata_flistxattr(fd, list, size)
    }

    @inline(__always)
    public static func removexattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>) -> Int32 {
        strata_removexattr(path, name)
    }

    @inline(__always)
    public static func lremovexattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>) -> Int32 {
        strata_lremovexattr(path, name)
    }

    @inline(__always)
    public static func fremovexattr(_ fd: Int32, _ name: UnsafePointer<CChar>) -> Int32 {
        strata_fremovexattr(fd, name)
    }

    // MARK: By descriptor and name (-1 with errno; ENOSYS on kernels that lack them)
    //
    // `dir` may be an O_PATH descriptor; `atFlags` takes AT_SYMLINK_NOFOLLOW (and, for
    // fchmodat2, AT_EMPTY_PATH: the descriptor's own object). None needs /proc.

    /// fchmodat2(2), Linux 6.6: unlike fchmodat, it takes AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH.
    @inline(__always)
    public static func fchmodat2(_ dir: Int32, _ path: UnsafePointer<CChar>, _ mode: UInt32, _ atFlags: Int32) -> Int32 {
        strata_fchmodat2(dir, path, mode, atFlags)
    }

    /// getxattrat(2), Linux 6.13.
    @inline(__always)
    public static func getxattrat(_ dir: Int32, _ path: UnsafePointer<CChar>, _ atFlags: Int32, _ name: UnsafePointer<CChar>,
                                  _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int {
        strata_getxattrat(dir, path, atFlags, name, value, size)
    }

    /// setxattrat(2), Linux 6.13; `flags` as setxattr's (XATTR_CREATE, XATTR_REPLACE).
    @inline(__always)
    public static func setxattrat(_ dir: Int32, _ path: UnsafePointer<CChar>, _ atFlags: Int32, _ name: UnsafePointer<CChar>,
                                  _ value: UnsafeRawPointer?, _ size: Int, _ flags: Int32) -> Int32 {
        strata_setxattrat(dir, path, atFlags, name, value, size, flags)
    }

    /// listxattrat(2), Linux 6.13.
    @inline(__always)
    public static func listxattrat(_ dir: Int32, _ path: UnsafePointer<CChar>, _ atFlags: Int32,
                                   _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        strata_listxattrat(dir, path, atFlags, list, size)
    }

    /// removexattrat(2), Linux 6.13.
    @inline(__always)
    public static func removexattrat(_ dir: Int32, _ path: UnsafePointer<CChar>, _ atFlags: Int32,
                                     _ name: UnsafePointer<CChar>) -> Int32 {
        strata_removexattrat(dir, path, atFlags, name)
    }

    /// The size-then-fetch dance of the xattr list and get calls: `call(nil, 0)` for the size,
    /// then `call(buffer, size)`, again while the value grows in between (ERANGE), retrying on
    /// EINTR. Returns the bytes (a list of names is NUL-terminated names), or nil when the call
    /// fails with one of `absentWhen` (by default ENODATA and ENOTSUP: absent, or a file system
    /// without xattrs); any other failure throws.
    public static func sizedXattrQuery(operation: String, path: String? = nil,
                                       absentWhen: [Int32] = [Glibc.ENODATA, Glibc.ENOTSUP], attempts: Int = 8,
                                       _ call: (UnsafeMutablePointer<CChar>?, Int) -> Int) throws(SystemError) -> [UInt8]? {
        var attempt = 0
        while attempt < attempts {
            let size = call(nil, 0)
            if size < 0 {
                let code = errno
                if code == EINTR { continue }
                if absentWhen.contains(code) { return nil }
                throw SystemError(code: code, operation: operation, path: path)
            }
            if size == 0 { return [] }
            var buffer = [UInt8](repeating: 0, count: size)
            let got = buffer.withUnsafeMutableBytes { call($0.baseAddress!.assumingMemoryBound(to: CChar.self), size) }
            if got >= 0 { return Array(buffer[0..<got]) }
            let code = errno
            if code == EINTR { continue }
            if code == ERANGE { attempt += 1; continue }   // grew in between
            if absentWhen.contains(code) { return nil }
            throw SystemError(code: code, operation: operation, path: path)
        }
        throw SystemError(code: ERANGE, operation: "\(operation) (the value keeps changing size)", path: path)
    }
}
