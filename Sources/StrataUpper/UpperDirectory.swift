import StrataFS
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The system calls made on the upper and work directories. Every call is relative to a
/// directory file descriptor and takes a single name (never a path with "/"), and none follows
/// a symlink in the last component: whatever symlinks the image or the container create, the
/// daemon cannot be led outside the upper directory. errno becomes `FSError` here, in one place.
enum Sys {
    @inline(__always)
    static func check<T: BinaryInteger>(_ body: () -> T) throws(FSError) -> T {
        while true {
            let r = body()
            if r >= 0 { return r }
            let code = errno
            if code == EINTR { continue }
            throw FSError(code)
        }
    }

    static func name(_ bytes: UnsafeRawBufferPointer) -> [CChar] {
        var c = [CChar](repeating: 0, count: bytes.count + 1)
        for i in 0..<bytes.count { c[i] = CChar(bitPattern: bytes[i]) }
        return c
    }

    static func name(_ bytes: [UInt8]) -> [CChar] {
        bytes.withUnsafeBytes { name($0) }
    }

    /// "/proc/self/fd/N": reaches the object an Sys.oPath descriptor holds. Serving does not
    /// depend on /proc: only kernels without fchmodat2 (6.6), the *xattrat calls (6.13) or
    /// utimensat's AT_EMPTY_PATH (5.8), and an orphan the work directory could not link
    /// (`OverlayFileSystem.keepOrphan`), come this way.
    static func procPath(_ fd: Int32) -> String { "/proc/self/fd/\(fd)" }

    static func openat(_ dir: Int32, _ name: [CChar], _ flags: Int32, _ mode: mode_t = 0) throws(FSError) -> Int32 {
        try check { Glibc.openat(dir, name, flags | O_CLOEXEC | O_NOFOLLOW, mode) }
    }

    /// An Sys.oPath descriptor of a directory entry (any type, symlinks not followed).
    static func pathFD(_ dir: Int32, _ name: [CChar]) throws(FSError) -> Int32 {
        try check { Glibc.openat(dir, name, Sys.oPath | O_NOFOLLOW | O_CLOEXEC) }
    }

    static func stat(_ dir: Int32, _ name: [CChar]) throws(FSError) -> stat {
        var st = Glibc.stat()
        _ = try check { fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) }
        return st
    }

    /// nil when the name does not exist (ENOENT); other errors are thrown.
    static func statIfPresent(_ dir: Int32, _ name: [CChar]) throws(FSError) -> stat? {
        var st = Glibc.stat()
        if fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0 { return st }
        let code = errno
        if code == ENOENT { return nil }
        throw FSError(code)
    }

    static func fstat(_ fd: Int32) throws(FSError) -> stat {
        var st = Glibc.stat()
        // fstatat with AT_EMPTY_PATH works on Sys.oPath descriptors too.
        _ = try check { fstatat(fd, "", &st, atEmptyPath | AT_SYMLINK_NOFOLLOW) }
        return st
    }

    static func mkdirat(_ dir: Int32, _ name: [CChar], _ mode: mode_t) throws(FSError) {
        _ = try check { Glibc.mkdirat(dir, name, mode) }
    }

    static func mknodat(_ dir: Int32, _ name: [CChar], _ mode: mode_t, _ rdev: dev_t) throws(FSError) {
        _ = try check { Glibc.mknodat(dir, name, mode, rdev) }
    }

    static func symlinkat(_ target: [CChar], _ dir: Int32, _ name: [CChar]) throws(FSError) {
        _ = try check { Glibc.symlinkat(target, dir, name) }
    }

    static func linkat(_ fromDir: Int32, _ from: [CChar], _ toDir: Int32, _ to: [CChar]) throws(FSError) {
        _ = try check { Glibc.linkat(fromDir, from, toDir, to, 0) }
    }

    static func unlinkat(_ dir: Int32, _ name: [CChar], directory: Bool = false) throws(FSError) {
        _ = try check { Glibc.unlinkat(dir, name, directory ? AT_REMOVEDIR : 0) }
    }

    // Linux constants glibc declares only under _GNU_SOURCE, which Swift's Glibc module lacks.
    static let atEmptyPath = LinuxCalls.atEmptyPath
    static let oPath = LinuxCalls.openPath
    static let noAccessTime = LinuxCalls.openNoAccessTime

    static func fallocate(_ fd: Int32, _ mode: Int32, _ offset: UInt64, _ length: UInt64) throws(FSError) {
        _ = try check { LinuxCalls.fallocate(fd, mode, Int64(offset), Int64(length)) }
    }

    static let renameNoReplace = LinuxCalls.renameNoReplace
    static let renameExchange = LinuxCalls.renameExchange
    static let renameWhiteout = LinuxCalls.renameWhiteout

    static func renameat(_ fromDir: Int32, _ from: [CChar], _ toDir: Int32, _ to: [CChar], flags: UInt32 = 0) throws(FSError) {
        if flags == 0 {
            _ = try check { Glibc.renameat(fromDir, from, toDir, to) }
            return
        }
        _ = try check { LinuxCalls.renameat2(fromDir, from, toDir, to, flags) }
    }

    static func fchownat(_ dir: Int32, _ name: [CChar], _ uid: uid_t, _ gid: gid_t) throws(FSError) {
        _ = try check { Glibc.fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW) }
    }

    /// chmod of an entry without following a symlink (symlinks have no mode to change).
    static func chmodat(_ dir: Int32, _ name: [CChar], _ mode: mode_t) throws(FSError) {
        try fchmodat2(dir, name, mode, AT_SYMLINK_NOFOLLOW)
    }

    /// chmod of the object an Sys.oPath descriptor holds.
    static func chmod(_ fd: Int32, _ mode: mode_t) throws(FSError) {
        try fchmodat2(fd, [0], mode, atEmptyPath)
    }

    private static func fchmodat2(_ dir: Int32, _ name: [CChar], _ mode: mode_t, _ flags: Int32) throws(FSError) {
        while LinuxCalls.fchmodat2(dir, name, UInt32(mode), flags) != 0 {
            let code = errno
            if code == EINTR { continue }
            guard code == ENOSYS else { throw FSError(code) }
            // Linux before 6.6: through /proc, which must then be mounted.
            if flags & atEmptyPath != 0 { _ = try check { Glibc.chmod(procPath(dir), mode) }; return }
            let fd = try pathFD(dir, name)
            defer { close(fd) }
            _ = try check { Glibc.chmod(procPath(fd), mode) }
            return
        }
    }

    static func utimensat(_ dir: Int32, _ name: [CChar], _ times: [timespec]) throws(FSError) {
        let r = times.withUnsafeBufferPointer { Glibc.utimensat(dir, name, $0.baseAddress, AT_SYMLINK_NOFOLLOW) }
        if r < 0 { throw FSError(errno) }
    }

    /// utimensat of the object an Sys.oPath descriptor holds (a symlink itself, not followed).
    static func utimens(_ fd: Int32, _ times: [timespec]) throws(FSError) {
        var r = times.withUnsafeBufferPointer { Glibc.utimensat(fd, "", $0.baseAddress, atEmptyPath) }
        if r < 0 && errno == EINVAL {
            // Linux before 5.8 takes no AT_EMPTY_PATH here: through /proc, which must then be mounted.
            r = times.withUnsafeBufferPointer { Glibc.utimensat(AT_FDCWD, procPath(fd), $0.baseAddress, 0) }
        }
        if r < 0 { throw FSError(errno) }
    }

    static func readlinkat(_ dir: Int32, _ name: [CChar]) throws(FSError) -> [UInt8] {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = Glibc.readlinkat(dir, name, &buffer, buffer.count)
        if n < 0 { throw FSError(errno) }
        return buffer[0..<n].map { UInt8(bitPattern: $0) }
    }

    // MARK: xattrs

    /// Runs an xattr call without /proc: by name in its directory, or as "." of a directory
    /// descriptor. Kernels before 6.13 (ENOSYS) and a descriptor of a file whose last name is
    /// gone (ENOTDIR, ENOENT from ".") take `viaProc` with the /proc/self/fd path instead.
    static func xattrCall<T: BinaryInteger>(_ target: OverlayFileSystem.UpperObject, _ at: (Int32, UnsafePointer<CChar>, Int32) -> T,
                                            viaProc: (String) -> T) -> T {
        switch target {
        case .entry(let dir, let name):
            let r = at(dir, name, AT_SYMLINK_NOFOLLOW)
            guard r < 0, errno == ENOSYS else { return r }
            let fd = Glibc.openat(dir, name, Sys.oPath | O_NOFOLLOW | O_CLOEXEC)
            guard fd >= 0 else { return -1 }
            let r2 = viaProc(procPath(fd))
            let code = errno
            close(fd)
            errno = code
            return r2
        case .descriptor(let fd):
            let r = at(fd, ".", 0)
            guard r < 0, [ENOSYS, ENOTDIR, ENOENT].contains(errno) else { return r }
            return viaProc(procPath(fd))
        }
    }

    static func getxattr(_ target: OverlayFileSystem.UpperObject, _ name: String) throws(FSError) -> [UInt8] {
        do throws(SystemError) {
            return try LinuxCalls.sizedXattrQuery(operation: "getxattr", absentWhen: []) { buffer, size in
                xattrCall(target, { LinuxCalls.getxattrat($0, $1, $2, name, buffer, size) },
                          viaProc: { LinuxCalls.getxattr($0, name, buffer, size) })
            } ?? []
        } catch { throw FSError(error.code) }
    }

    static func getxattr(_ fd: Int32, _ name: String) throws(FSError) -> [UInt8] { try getxattr(.descriptor(fd), name) }

    static func getxattrIfPresent(_ fd: Int32, _ name: String) -> [UInt8]? {
        try? getxattr(fd, name)
    }

    static func setxattr(_ target: OverlayFileSystem.UpperObject, _ name: String, _ value: UnsafeRawBufferPointer, _ flags: Int32) throws(FSError) {
        _ = try check {
            xattrCall(target, { LinuxCalls.setxattrat($0, $1, $2, name, value.baseAddress, value.count, flags) },
                      viaProc: { LinuxCalls.setxattr($0, name, value.baseAddress, value.count, flags) })
        }
    }

    static func setxattr(_ target: OverlayFileSystem.UpperObject, _ name: String, _ value: [UInt8]) throws(FSError) {
        let r = value.withUnsafeBytes { v in
            xattrCall(target, { LinuxCalls.setxattrat($0, $1, $2, name, v.baseAddress, v.count, 0) },
                      viaProc: { LinuxCalls.setxattr($0, name, v.baseAddress, v.count, 0) })
        }
        if r < 0 { throw FSError(errno) }
    }

    static func setxattr(_ fd: Int32, _ name: String, _ value: [UInt8]) throws(FSError) {
        try setxattr(.descriptor(fd), name, value)
    }

    static func removexattr(_ target: OverlayFileSystem.UpperObject, _ name: String) throws(FSError) {
        _ = try check {
            xattrCall(target, { LinuxCalls.removexattrat($0, $1, $2, name) }, viaProc: { LinuxCalls.removexattr($0, name) })
        }
    }

    static func listxattr(_ target: OverlayFileSystem.UpperObject) throws(FSError) -> [String] {
        let list: [UInt8]?
        do throws(SystemError) {
            list = try LinuxCalls.sizedXattrQuery(operation: "listxattr", absentWhen: []) { buffer, size in
                xattrCall(target, { LinuxCalls.listxattrat($0, $1, $2, buffer, size) },
                          viaProc: { LinuxCalls.listxattr($0, buffer, size) })
            }
        } catch { throw FSError(error.code) }
        return (list ?? []).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    // MARK: directories

    /// The names in a directory (without "." and ".."), with their d_type.
    static func list(_ dirFD: Int32) throws(FSError) -> [(name: [UInt8], type: UInt8)] {
        let fd = try check { Glibc.openat(dirFD, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard let dir = fdopendir(fd) else { close(fd); throw FSError(errno) }
        defer { closedir(dir) }
        var result: [(name: [UInt8], type: UInt8)] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw -> [UInt8] in
                let bytes = raw.bindMemory(to: UInt8.self)
                return Array(bytes[0..<(bytes.firstIndex(of: 0) ?? bytes.count)])
            }
            if name == [46] || name == [46, 46] { continue }
            result.append((name, entry.pointee.d_type))
        }
        return result
    }

    /// rm -rf of one entry, by descriptors: never follows a symlink.
    static func removeTree(_ dir: Int32, _ name: [CChar]) {
        guard let st = try? stat(dir, name) else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            if let fd = try? pathFD(dir, name), let children = try? list(fd) {
                for child in children { removeTree(fd, Sys.name(child.name)) }
                close(fd)
            }
            _ = Glibc.unlinkat(dir, name, AT_REMOVEDIR)
        } else {
            _ = Glibc.unlinkat(dir, name, 0)
        }
    }

    static func fsync(_ fd: Int32) throws(FSError) {
        _ = try check { Glibc.fsync(fd) }
    }

    /// fsync of a directory held by an Sys.oPath descriptor (fsync needs a real open).
    static func fsyncDirectory(_ fd: Int32, dataOnly: Bool = false) throws(FSError) {
        let d = try check { Glibc.openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(d) }
        _ = try check { dataOnly ? fdatasync(d) : Glibc.fsync(d) }
    }
}
