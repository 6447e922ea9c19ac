#if canImport(Glibc)
import Glibc
#endif

/// The *at calls, on a directory descriptor (which may be an O_PATH one) and one name, or on
/// `currentDirectory` and a path. Names are C strings (a `[CChar]` or a `String` converts).
/// None follows a symlink in the last component unless asked to.
extension FileDescriptor {
    /// AT_FDCWD: the *at calls then take a path, as the plain calls do.
    public static let currentDirectory = FileDescriptor(rawValue: AT_FDCWD)

    /// "/proc/self/fd/N": reaches the object an O_PATH descriptor holds, on kernels that lack
    /// the calls taking the descriptor itself (which /proc must then be mounted for).
    public var procPath: String { "/proc/self/fd/\(rawValue)" }

    /// An O_PATH descriptor of a directory entry (any type, symlinks not followed).
    public func pathDescriptor(at name: UnsafePointer<CChar>) throws(SystemError) -> FileDescriptor {
        try FileDescriptor.openat(self, name, LinuxCalls.openPath | O_NOFOLLOW)
    }

    /// A readable descriptor of this directory (an O_PATH one cannot be listed or fsynced).
    public func reopenDirectory() throws(SystemError) -> FileDescriptor {
        try FileDescriptor.openat(self, ".", O_RDONLY | O_DIRECTORY)
    }

    public func duplicate() throws(SystemError) -> FileDescriptor {
        FileDescriptor(rawValue: try retryOnInterrupt("dup") { Glibc.fcntl(rawValue, F_DUPFD_CLOEXEC, 0) })
    }

    /// fstatat; `flags` AT_SYMLINK_NOFOLLOW by default. With name "" and `LinuxCalls.atEmptyPath`,
    /// the descriptor's own object (O_PATH descriptors too).
    public func stat(at name: UnsafePointer<CChar>, flags: Int32 = AT_SYMLINK_NOFOLLOW) throws(SystemError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try retryOnInterrupt("fstatat", path: String(cString: name)) { fstatat(rawValue, name, &st, flags) }
        return st
    }

    /// Like `stat(at:)`, but nil when nothing is there (ENOENT, and ENOTDIR when asked).
    public func statIfPresent(at name: UnsafePointer<CChar>, absentWhenNotDirectory: Bool = false) throws(SystemError) -> Glibc.stat? {
        do {
            return try stat(at: name)
        } catch where error.code == ENOENT || (absentWhenNotDirectory && error.code == ENOTDIR) {
            return nil
        }
    }

    /// The object this descriptor holds, symlinks included (fstatat with AT_EMPTY_PATH).
    public func statObject() throws(SystemError) -> Glibc.stat {
        try stat(at: "", flags: LinuxCalls.atEmptyPath | AT_SYMLINK_NOFOLLOW)
    }

    public func makeDirectory(at name: UnsafePointer<CChar>, mode: mode_t) throws(SystemError) {
        _ = try retryOnInterrupt("mkdirat", path: String(cString: name)) { mkdirat(rawValue, name, mode) }
    }

    public func makeNode(at name: UnsafePointer<CChar>, mode: mode_t, device: dev_t) throws(SystemError) {
        _ = try retryOnInterrupt("mknodat", path: String(cString: name)) { mknodat(rawValue, name, mode, device) }
    }

    public func makeSymlink(at name: UnsafePointer<CChar>, target: UnsafePointer<CChar>) throws(SystemError) {
        _ = try retryOnInterrupt("symlinkat", path: String(cString: name)) { symlinkat(target, rawValue, name) }
    }

    /// A hard link `to` in `directory` of the entry `name` here (never following a symlink).
    public func link(at name: UnsafePointer<CChar>, to directory: FileDescriptor, _ newName: UnsafePointer<CChar>) throws(SystemError) {
        _ = try retryOnInterrupt("linkat", path: String(cString: newName)) { linkat(rawValue, name, directory.rawValue, newName, 0) }
    }

    public func unlink(at name: UnsafePointer<CChar>, directory: Bool = false) throws(SystemError) {
        _ = try retryOnInterrupt("unlinkat", path: String(cString: name)) { unlinkat(rawValue, name, directory ? AT_REMOVEDIR : 0) }
    }

    /// renameat, or renameat2 with `flags` (LinuxCalls.renameNoReplace, renameExchange, renameWhiteout).
    public func rename(at name: UnsafePointer<CChar>, to directory: FileDescriptor, _ newName: UnsafePointer<CChar>,
                       flags: UInt32 = 0) throws(SystemError) {
        if flags == 0 {
            _ = try retryOnInterrupt("renameat", path: String(cString: name)) { renameat(rawValue, name, directory.rawValue, newName) }
        } else {
            _ = try retryOnInterrupt("renameat2", path: String(cString: name)) {
                LinuxCalls.renameat2(rawValue, name, directory.rawValue, newName, flags)
            }
        }
    }

    /// fchownat; with name "" and `LinuxCalls.atEmptyPath`, the object an O_PATH descriptor holds.
    /// uid or gid UInt32.max (-1) leaves it unchanged.
    public func changeOwner(at name: UnsafePointer<CChar>, uid: uid_t, gid: gid_t, flags: Int32 = AT_SYMLINK_NOFOLLOW) throws(SystemError) {
        _ = try retryOnInterrupt("fchownat", path: String(cString: name)) { fchownat(rawValue, name, uid, gid, flags) }
    }

    /// chmod of an entry without following a symlink (symlinks have no mode to change), or with
    /// name "" and `LinuxCalls.atEmptyPath`, of the object an O_PATH descriptor holds: fchmodat2
    /// (Linux 6.6), else through /proc, which must then be mounted.
    public func changeMode(at name: UnsafePointer<CChar>, mode: mode_t, flags: Int32 = AT_SYMLINK_NOFOLLOW) throws(SystemError) {
        while LinuxCalls.fchmodat2(rawValue, name, UInt32(mode), flags) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == ENOSYS else { throw SystemError(code: code, operation: "fchmodat2", path: String(cString: name)) }
            if flags & LinuxCalls.atEmptyPath != 0 {
                _ = try retryOnInterrupt("chmod", path: procPath) { chmod(procPath, mode) }
                return
            }
            let fd = try pathDescriptor(at: name)
            defer { fd.close() }
            _ = try retryOnInterrupt("chmod", path: fd.procPath) { chmod(fd.procPath, mode) }
            return
        }
    }

    /// utimensat of an entry, not following a symlink; `times` are atime and mtime (or UTIME_NOW/UTIME_OMIT).
    public func setTimes(at name: UnsafePointer<CChar>, _ times: [timespec]) throws(SystemError) {
        let r = times.withUnsafeBufferPointer { utimensat(rawValue, name, $0.baseAddress, AT_SYMLINK_NOFOLLOW) }
        if r < 0 { throw SystemError(code: errno, operation: "utimensat", path: String(cString: name)) }
    }

    /// utimensat of the object an O_PATH descriptor holds (a symlink itself, not followed).
    public func setTimes(_ times: [timespec]) throws(SystemError) {
        var r = times.withUnsafeBufferPointer { utimensat(rawValue, "", $0.baseAddress, LinuxCalls.atEmptyPath) }
        if r < 0 && errno == EINVAL {
            // Linux before 5.8 takes no AT_EMPTY_PATH here: through /proc, which must then be mounted.
            r = times.withUnsafeBufferPointer { utimensat(AT_FDCWD, procPath, $0.baseAddress, 0) }
        }
        if r < 0 { throw SystemError(code: errno, operation: "utimensat", path: procPath) }
    }

    /// A symlink's target, as bytes.
    public func readLink(at name: UnsafePointer<CChar>) throws(SystemError) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = try retryOnInterrupt("readlinkat", path: String(cString: name)) { readlinkat(rawValue, name, &buffer, buffer.count) }
        return buffer[0..<n].map { UInt8(bitPattern: $0) }
    }

    /// fallocate(2); `mode` as LinuxCalls.fallocateKeepSize, fallocatePunchHole.
    public func allocate(mode: Int32, offset: UInt64, length: UInt64) throws(SystemError) {
        _ = try retryOnInterrupt("fallocate") { LinuxCalls.fallocate(rawValue, mode, Int64(offset), Int64(length)) }
    }

    /// flock(2): LOCK_EX, LOCK_SH, LOCK_UN (| LOCK_NB), waiting through signals.
    public func lock(_ operation: Int32 = LOCK_EX) throws(SystemError) {
        _ = try retryOnInterrupt("flock") { flock(rawValue, operation) }
    }

    /// Opens `path` and takes an exclusive flock(2) on it, waiting for it: released when the
    /// descriptor closes, or by the kernel when the process dies. The error's operation is
    /// "open" or "flock".
    public static func openLocked(_ path: String, _ flags: Int32, mode: mode_t = 0o600) throws(SystemError) -> FileDescriptor {
        let fd: FileDescriptor
        do { fd = try openat(.currentDirectory, path, flags, mode: mode) } catch {
            throw SystemError(code: error.code, operation: "open", path: path)
        }
        do { try fd.lock(LOCK_EX) } catch {
            fd.close()
            throw SystemError(code: error.code, operation: "flock", path: path)
        }
        return fd
    }

    /// The names in this directory (without "." and ".."), with their d_type, in directory order.
    /// Works on an O_PATH descriptor too: the directory is opened again to be read.
    public func entries() throws(SystemError) -> [(name: [UInt8], type: UInt8)] {
        let fd = try reopenDirectory()
        guard let dir = fdopendir(fd.rawValue) else {
            let code = errno
            fd.close()
            throw SystemError(code: code, operation: "fdopendir")
        }
        defer { closedir(dir) }
        var result: [(name: [UInt8], type: UInt8)] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw SystemError(code: errno, operation: "readdir") }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name == [46] || name == [46, 46] { continue }
            result.append((name, entry.pointee.d_type))
        }
        return result
    }

    /// A name's bytes as a NUL-terminated C string.
    public static func cName(_ bytes: UnsafeRawBufferPointer) -> [CChar] {
        var c = [CChar](repeating: 0, count: bytes.count + 1)
        for i in 0..<bytes.count { c[i] = CChar(bitPattern: bytes[i]) }
        return c
    }

    public static func cName(_ bytes: [UInt8]) -> [CChar] {
        bytes.withUnsafeBytes { cName($0) }
    }
}
