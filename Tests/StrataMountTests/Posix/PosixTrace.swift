#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Runs one scenario's system calls in a directory and records what they did, in a form that
/// does not depend on where it ran: errno names, stat fields, inode numbers replaced by the
/// order in which they were first seen, times as "changed since this inode was last seen".
final class PosixTrace {
    let base: String
    private(set) var lines: [String] = []
    private var inodeLabels: [UInt64: Int] = [:]
    private var lastTimes: [Int: (m: timespec, c: timespec)] = [:]
    /// An O_PATH descriptor of every inode labelled: while it is held, ext4 cannot give its
    /// number to a new file, which would make a new file look like an old one.
    private var pins: [Int32] = []

    init(base: String) { self.base = base }

    /// Closes the pins; call at the end of the scenario.
    func finish() {
        for fd in pins { Glibc.close(fd) }
        pins = []
    }

    func path(_ relative: String) -> String { relative.isEmpty ? base : base + "/" + relative }

    func note(_ line: String) { lines.append(line) }

    /// Waits until the file system clock has moved on, so that a step that changes a time
    /// always leaves a different one (the kernel stamps with a clock that ticks every few ms).
    static func tick() {
        var start = timespec(), now = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &start)
        repeat {
            usleep(200)
            clock_gettime(CLOCK_REALTIME_COARSE, &now)
        } while now.tv_sec == start.tv_sec && now.tv_nsec == start.tv_nsec
    }

    /// Records `what = ok|ERRNO` for a call returning -1/errno on failure.
    @discardableResult
    func call(_ what: String, _ body: () -> Int32) -> Int32 {
        Self.tick()
        errno = 0
        let r = body()
        let e = errno
        note("\(what) = \(r < 0 ? Self.errnoName(e) : "ok")")
        if r < 0 { errno = e }
        return r
    }

    /// For calls returning an errno (posix_fallocate).
    func callReturningErrno(_ what: String, _ body: () -> Int32) {
        Self.tick()
        let r = body()
        note("\(what) = \(r == 0 ? "ok" : Self.errnoName(r))")
    }

    // MARK: stat

    func labelOf(_ ino: UInt64, pin: () -> Int32) -> Int {
        if let l = inodeLabels[ino] { return l }
        let l = inodeLabels.count + 1
        inodeLabels[ino] = l
        let fd = pin()
        if fd >= 0 { pins.append(fd) }
        return l
    }

    static let oPath = LinuxCalls.openPath
    static let atEmptyPath = LinuxCalls.atEmptyPath
    static let statxForceSync = LinuxCalls.statxForceSync

    /// Asks the file system itself, not a cache: a FUSE mount's kernel keeps attributes for a
    /// while (attr_timeout), and what the daemon answers is what everyone sees after it.
    static func refresh(_ dirfd: Int32, _ path: String, _ flags: Int32) {
        var buffer = [UInt8](repeating: 0, count: LinuxCalls.statxSize)
        _ = buffer.withUnsafeMutableBytes { LinuxCalls.statx(dirfd, path, flags | statxForceSync, LinuxCalls.statxBasicStats, $0.baseAddress!) }
    }

    /// lstat (or stat, following symlinks), recorded.
    func stat(_ relative: String, follow: Bool = false, exactTimes: Bool = false) {
        var st = Glibc.stat()
        Self.refresh(AT_FDCWD, path(relative), follow ? 0 : AT_SYMLINK_NOFOLLOW)
        let r = fstatat(AT_FDCWD, path(relative), &st, follow ? 0 : AT_SYMLINK_NOFOLLOW)
        let name = "\(follow ? "stat" : "lstat") \(relative.isEmpty ? "." : relative)"
        if r < 0 { note("\(name) = \(Self.errnoName(errno))"); return }
        note("\(name): \(describe(st, exactTimes: exactTimes) { Glibc.open(path(relative), Self.oPath | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW)) })")
    }

    func fstat(_ fd: Int32, _ label: String, exactTimes: Bool = false) {
        var st = Glibc.stat()
        Self.refresh(fd, "", Self.atEmptyPath)
        if Glibc.fstat(fd, &st) < 0 { note("fstat \(label) = \(Self.errnoName(errno))"); return }
        note("fstat \(label): \(describe(st, exactTimes: exactTimes) { Glibc.dup(fd) })")
    }

    func describe(_ st: Glibc.stat, exactTimes: Bool, pin: () -> Int32) -> String {
        let type: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: type = "reg"
        case S_IFDIR: type = "dir"
        case S_IFLNK: type = "lnk"
        case S_IFIFO: type = "fifo"
        case S_IFCHR: type = "chr"
        case S_IFBLK: type = "blk"
        case S_IFSOCK: type = "sock"
        default: type = "?"
        }
        var s = "\(type) \(String(st.st_mode & 0o7777, radix: 8)) n\(st.st_nlink) \(st.st_uid):\(st.st_gid)"
        if type == "reg" || type == "lnk" { s += " s\(st.st_size)" }
        if type == "reg" { s += st.st_blocks > 0 ? " b+" : " b0" }
        if type == "chr" || type == "blk" { s += " rdev\(st.st_rdev)" }
        let label = labelOf(UInt64(st.st_ino), pin: pin)
        s += " #\(label)"
        func same(_ a: timespec, _ b: timespec) -> Bool { a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec }
        if let last = lastTimes[label] {
            s += same(last.m, st.st_mtim) ? " m=" : " m+"
            s += same(last.c, st.st_ctim) ? " c=" : " c+"
        }
        lastTimes[label] = (st.st_mtim, st.st_ctim)
        if exactTimes { s += " mtime \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)" }
        return s
    }

    // MARK: errno names

    static func errnoName(_ e: Int32) -> String {
        let names: [Int32: String] = [
            EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", ENXIO: "ENXIO", EBADF: "EBADF", EACCES: "EACCES",
            EBUSY: "EBUSY", EEXIST: "EEXIST", EXDEV: "EXDEV", ENOTDIR: "ENOTDIR", EISDIR: "EISDIR",
            EINVAL: "EINVAL", EFBIG: "EFBIG", ENOSPC: "ENOSPC", EROFS: "EROFS", EMLINK: "EMLINK",
            ENAMETOOLONG: "ENAMETOOLONG", ENOTEMPTY: "ENOTEMPTY", ELOOP: "ELOOP", ENODATA: "ENODATA",
            EOPNOTSUPP: "EOPNOTSUPP", ESTALE: "ESTALE", ERANGE: "ERANGE", ETXTBSY: "ETXTBSY", ENOSYS: "ENOSYS",
            E2BIG: "E2BIG", EFAULT: "EFAULT"
        ]
        return names[e] ?? "errno\(e)"
    }
}

/// The system calls a scenario makes, by path relative to the scenario's directory. Each one
/// is recorded in the trace.
extension PosixTrace {
    @discardableResult
    func open(_ p: String, _ flags: Int32, _ mode: mode_t = 0o644, as label: String? = nil) -> Int32 {
        call("open \(p) \(Self.flagNames(flags))\(flags & O_CREAT != 0 ? " " + String(mode, radix: 8) : "")") {
            Glibc.open(path(p), flags | O_CLOEXEC, mode)
        }
    }
    @discardableResult
    func creat(_ p: String, _ mode: mode_t) -> Int32 { call("creat \(p) \(String(mode, radix: 8))") { Glibc.creat(path(p), mode) } }
    func close(_ fd: Int32) { if fd >= 0 { Glibc.close(fd) } }
    func write(_ fd: Int32, _ text: String) {
        call("write \(text.count)") { fd < 0 ? -1 : Int32(truncatingIfNeeded: Glibc.write(fd, text, text.utf8.count)) }
    }
    func pwrite(_ fd: Int32, _ text: String, at offset: Int) {
        call("pwrite \(text.count)@\(offset)") { fd < 0 ? -1 : Int32(truncatingIfNeeded: Glibc.pwrite(fd, text, text.utf8.count, off_t(offset))) }
    }
    func read(_ fd: Int32, _ count: Int = 64, at offset: Int? = nil) {
        Self.tick()
        var buffer = [UInt8](repeating: 0, count: count)
        let n = offset.map { Glibc.pread(fd, &buffer, count, off_t($0)) } ?? Glibc.read(fd, &buffer, count)
        if n < 0 { note("read = \(Self.errnoName(errno))"); return }
        let text = buffer[0..<n].map { $0 == 0 ? "\\0" : String(UnicodeScalar($0)) }.joined()
        note("read = \"\(text)\"")
    }
    /// The whole content of a file, opened read-only.
    func content(_ p: String) {
        let fd = Glibc.open(path(p), O_RDONLY | O_CLOEXEC)
        if fd < 0 { note("content \(p) = \(Self.errnoName(errno))"); return }
        defer { Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        let n = Glibc.read(fd, &buffer, buffer.count)
        note("content \(p) = \"\(buffer[0..<max(n, 0)].map { $0 == 0 ? "\\0" : String(UnicodeScalar($0)) }.joined())\"")
    }
    func lseek(_ fd: Int32, _ offset: Int, _ whence: Int32) {
        call("lseek \(offset) \(whence)") { Int32(truncatingIfNeeded: Glibc.lseek(fd, off_t(offset), whence)) }
    }
    func truncate(_ p: String, _ size: Int) { call("truncate \(p) \(size)") { Glibc.truncate(path(p), off_t(size)) } }
    func ftruncate(_ fd: Int32, _ size: Int) { call("ftruncate \(size)") { Glibc.ftruncate(fd, off_t(size)) } }
    func fallocate(_ fd: Int32, _ offset: Int, _ length: Int) {
        callReturningErrno("posix_fallocate \(offset)+\(length)") { posix_fallocate(fd, off_t(offset), off_t(length)) }
    }
    func mkdir(_ p: String, _ mode: mode_t = 0o755) { call("mkdir \(p) \(String(mode, radix: 8))") { Glibc.mkdir(path(p), mode) } }
    func rmdir(_ p: String) { call("rmdir \(p)") { Glibc.rmdir(path(p)) } }
    func mkfifo(_ p: String, _ mode: mode_t = 0o644) { call("mkfifo \(p) \(String(mode, radix: 8))") { Glibc.mkfifo(path(p), mode) } }
    func mknod(_ p: String, _ mode: mode_t, _ major: UInt32 = 0, _ minor: UInt32 = 0) {
        let dev = (UInt64(major) << 8) | UInt64(minor)
        call("mknod \(p) \(String(mode, radix: 8)) \(major):\(minor)") { Glibc.mknod(path(p), mode, dev_t(dev)) }
    }
    func symlink(_ target: String, _ p: String) { call("symlink \(target.prefix(40)) \(p)") { Glibc.symlink(target, path(p)) } }
    func readlink(_ p: String) {
        Self.tick()
        var buffer = [CChar](repeating: 0, count: 8192)
        let n = Glibc.readlink(path(p), &buffer, buffer.count)
        if n < 0 { note("readlink \(p) = \(Self.errnoName(errno))"); return }
        note("readlink \(p) = \(String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self))")
    }
    func link(_ a: String, _ b: String) { call("link \(a) \(b)") { Glibc.link(path(a), path(b)) } }
    func linkat(_ a: String, _ b: String, follow: Bool) {
        call("linkat \(a) \(b) \(follow ? "follow" : "")") { Glibc.linkat(AT_FDCWD, path(a), AT_FDCWD, path(b), follow ? AT_SYMLINK_FOLLOW : 0) }
    }
    func unlink(_ p: String) { call("unlink \(p)") { Glibc.unlink(path(p)) } }
    func rename(_ a: String, _ b: String) { call("rename \(a) \(b)") { Glibc.rename(path(a), path(b)) } }
    func renameat2(_ a: String, _ b: String, _ flags: UInt32) {
        call("renameat2 \(a) \(b) \(flags)") { PosixCalls.renameat2(path(a), path(b), flags) }
    }
    func chmod(_ p: String, _ mode: mode_t) { call("chmod \(p) \(String(mode, radix: 8))") { Glibc.chmod(path(p), mode) } }
    func fchmod(_ fd: Int32, _ mode: mode_t) { call("fchmod \(String(mode, radix: 8))") { Glibc.fchmod(fd, mode) } }
    func chown(_ p: String, _ uid: UInt32, _ gid: UInt32) {
        call("chown \(p) \(Int32(bitPattern: uid)):\(Int32(bitPattern: gid))") { Glibc.chown(path(p), uid, gid) }
    }
    func lchown(_ p: String, _ uid: UInt32, _ gid: UInt32) {
        call("lchown \(p) \(Int32(bitPattern: uid)):\(Int32(bitPattern: gid))") { Glibc.lchown(path(p), uid, gid) }
    }
    func fchown(_ fd: Int32, _ uid: UInt32, _ gid: UInt32) {
        call("fchown \(Int32(bitPattern: uid)):\(Int32(bitPattern: gid))") { Glibc.fchown(fd, uid, gid) }
    }
    enum Time { case now, omit, at(Int) }
    static func spec(_ t: Time) -> timespec {
        switch t {
        case .now: return timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1)
        case .omit: return timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2)
        case .at(let s): return timespec(tv_sec: s, tv_nsec: 0)
        }
    }
    func utimensat(_ p: String, _ atime: Time, _ mtime: Time, nofollow: Bool = false) {
        let times = [Self.spec(atime), Self.spec(mtime)]
        call("utimensat \(p) \(atime) \(mtime)\(nofollow ? " nofollow" : "")") {
            Glibc.utimensat(AT_FDCWD, path(p), times, nofollow ? AT_SYMLINK_NOFOLLOW : 0)
        }
    }
    func futimens(_ fd: Int32, _ atime: Time, _ mtime: Time) {
        let times = [Self.spec(atime), Self.spec(mtime)]
        call("futimens \(atime) \(mtime)") { Glibc.futimens(fd, times) }
    }
    func setxattr(_ p: String, _ name: String, _ value: String, _ flags: Int32 = 0) {
        call("setxattr \(p) \(name)=\(value) \(flags)") { PosixCalls.lsetxattr(path(p), name, value, flags) }
    }
    func fsetxattr(_ fd: Int32, _ name: String, _ value: String) {
        call("fsetxattr \(name)=\(value)") { PosixCalls.fsetxattr(fd, name, value, 0) }
    }
    func getxattr(_ p: String, _ name: String) {
        Self.tick()
        if let v = PosixCalls.lgetxattr(path(p), name) { note("getxattr \(p) \(name) = \(v)") } else {
            note("getxattr \(p) \(name) = \(Self.errnoName(errno))")
        }
    }
    func listxattr(_ p: String) {
        Self.tick()
        // security.* (SELinux labels) differ between file systems and are none of ours.
        if let v = PosixCalls.llistxattr(path(p)) { note("listxattr \(p) = \(v.filter { $0.hasPrefix("user.") })") } else {
            note("listxattr \(p) = \(Self.errnoName(errno))")
        }
    }
    func removexattr(_ p: String, _ name: String) { call("removexattr \(p) \(name)") { PosixCalls.lremovexattr(path(p), name) } }
    func access(_ p: String, _ mode: Int32) { call("access \(p) \(mode)") { Glibc.access(path(p), mode) } }
    /// The names in a directory, sorted.
    func list(_ p: String) {
        guard let dir = opendir(path(p)) else { note("list \(p) = \(Self.errnoName(errno))"); return }
        defer { closedir(dir) }
        var names: [String] = []
        while let e = Glibc.readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        note("list \(p.isEmpty ? "." : p) = \(names.sorted().joined(separator: " "))")
    }
    func asUser(_ uid: UInt32 = 65534, _ gid: UInt32 = 65534, groups: [UInt32] = [], _ body: () -> Void) {
        note("as \(uid):\(gid)")
        PosixCalls.asUser(uid, gid, groups: groups, body)
        note("as root")
    }

    static func flagNames(_ flags: Int32) -> String {
        var parts: [String] = [["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACC3"][Int(flags & O_ACCMODE)]]
        let known: [(Int32, String)] = [(O_CREAT, "O_CREAT"), (O_EXCL, "O_EXCL"), (O_TRUNC, "O_TRUNC"), (O_APPEND, "O_APPEND"),
                                        (O_NONBLOCK, "O_NONBLOCK"), (O_DIRECTORY, "O_DIRECTORY"), (O_NOFOLLOW, "O_NOFOLLOW")]
        for (bit, name) in known where flags & bit != 0 { parts.append(name) }
        return parts.joined(separator: "|")
    }
}
