import StrataFS
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The system calls made on the upper and work directories, as StrataSystem's wrappers with
/// errno answered as `FSError`. Every call is relative to a directory file descriptor and takes
/// a single name (never a path with "/"), and none follows a symlink in the last component:
/// whatever symlinks the image or the container create, the daemon cannot be led outside the
/// upper directory.
enum Sys {
    /// Runs a StrataSystem call; its `SystemError` becomes the request's errno.
    @inline(__always)
    static func run<T>(_ body: () throws(SystemError) -> T) throws(FSError) -> T {
        do { return try body() } catch { throw FSError(error) }
    }

    static func name(_ bytes: UnsafeRawBufferPointer) -> [CChar] { FileDescriptor.cName(bytes) }
    static func name(_ bytes: [UInt8]) -> [CChar] { FileDescriptor.cName(bytes) }

    /// See `FileDescriptor.procPath`: only kernels without fchmodat2 (6.6), the *xattrat calls
    /// (6.13) or utimensat's AT_EMPTY_PATH (5.8), and an orphan the work directory could not link
    /// (`OverlayFileSystem.keepOrphan`), come this way.
    static func procPath(_ fd: Int32) -> String { FileDescriptor(rawValue: fd).procPath }

    private static func fd(_ raw: Int32) -> FileDescriptor { FileDescriptor(rawValue: raw) }

    static func openat(_ dir: Int32, _ name: [CChar], _ flags: Int32, _ mode: mode_t = 0) throws(FSError) -> Int32 {
        try run { () throws(SystemError) in try FileDescriptor.openat(fd(dir), name, flags | O_NOFOLLOW, mode: mode).rawValue }
    }

    /// An Sys.oPath descriptor of a directory entry (any type, symlinks not followed).
    static func pathFD(_ dir: Int32, _ name: [CChar]) throws(FSError) -> Int32 {
        try run { () throws(SystemError) in try fd(dir).pathDescriptor(at: name).rawValue }
    }

    static func stat(_ dir: Int32, _ name: [CChar]) throws(FSError) -> stat {
        try run { () throws(SystemError) in try fd(dir).stat(at: name) }
    }

    /// nil when the name does not exist (ENOENT); other errors are thrown.
    static func statIfPresent(_ dir: Int32, _ name: [CChar]) throws(FSError) -> stat? {
        try run { () throws(SystemError) in try fd(dir).statIfPresent(at: name) }
    }

    /// Works on Sys.oPath descriptors too.
    static func fstat(_ raw: Int32) throws(FSError) -> stat {
        try run { () throws(SystemError) in try fd(raw).statObject() }
    }

    static func mkdirat(_ dir: Int32, _ name: [CChar], _ mode: mode_t) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).makeDirectory(at: name, mode: mode) }
    }

    static func mknodat(_ dir: Int32, _ name: [CChar], _ mode: mode_t, _ rdev: dev_t) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).makeNode(at: name, mode: mode, device: rdev) }
    }

    static func symlinkat(_ target: [CChar], _ dir: Int32, _ name: [CChar]) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).makeSymlink(at: name, target: target) }
    }

    static func linkat(_ fromDir: Int32, _ from: [CChar], _ toDir: Int32, _ to: [CChar]) throws(FSError) {
        try run { () throws(SystemError) in try fd(fromDir).link(at: from, to: fd(toDir), to) }
    }

    static func unlinkat(_ dir: Int32, _ name: [CChar], directory: Bool = false) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).unlink(at: name, directory: directory) }
    }

    static let atEmptyPath = LinuxCalls.atEmptyPath
    static let oPath = LinuxCalls.openPath
    static let noAccessTime = LinuxCalls.openNoAccessTime

    static func fallocate(_ raw: Int32, _ mode: Int32, _ offset: UInt64, _ length: UInt64) throws(FSError) {
        try run { () throws(SystemError) in try fd(raw).allocate(mode: mode, offset: offset, length: length) }
    }

    static let renameNoReplace = LinuxCalls.renameNoReplace
    static let renameExchange = LinuxCalls.renameExchange
    static let renameWhiteout = LinuxCalls.renameWhiteout

    static func renameat(_ fromDir: Int32, _ from: [CChar], _ toDir: Int32, _ to: [CChar], flags: UInt32 = 0) throws(FSError) {
        try run { () throws(SystemError) in try fd(fromDir).rename(at: from, to: fd(toDir), to, flags: flags) }
    }

    static func fchownat(_ dir: Int32, _ name: [CChar], _ uid: uid_t, _ gid: gid_t) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).changeOwner(at: name, uid: uid, gid: gid) }
    }

    /// chown of the object an Sys.oPath descriptor holds.
    static func chown(_ raw: Int32, _ uid: uid_t, _ gid: gid_t) throws(FSError) {
        try run { () throws(SystemError) in try fd(raw).changeOwner(at: "", uid: uid, gid: gid, flags: atEmptyPath) }
    }

    /// chmod of an entry without following a symlink (symlinks have no mode to change).
    static func chmodat(_ dir: Int32, _ name: [CChar], _ mode: mode_t) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).changeMode(at: name, mode: mode) }
    }

    /// chmod of the object an Sys.oPath descriptor holds.
    static func chmod(_ raw: Int32, _ mode: mode_t) throws(FSError) {
        try run { () throws(SystemError) in try fd(raw).changeMode(at: "", mode: mode, flags: atEmptyPath) }
    }

    static func utimensat(_ dir: Int32, _ name: [CChar], _ times: [timespec]) throws(FSError) {
        try run { () throws(SystemError) in try fd(dir).setTimes(at: name, times) }
    }

    /// utimensat of the object an Sys.oPath descriptor holds (a symlink itself, not followed).
    static func utimens(_ raw: Int32, _ times: [timespec]) throws(FSError) {
        try run { () throws(SystemError) in try fd(raw).setTimes(times) }
    }

    static func readlinkat(_ dir: Int32, _ name: [CChar]) throws(FSError) -> [UInt8] {
        try run { () throws(SystemError) in try fd(dir).readLink(at: name) }
    }

    // MARK: xattrs

    private static func target(_ object: OverlayFileSystem.UpperObject) -> XattrTarget {
        switch object {
        case .entry(let dir, let name): return .entry(directory: fd(dir), name: name)
        case .descriptor(let raw): return .descriptor(fd(raw))
        }
    }

    static func getxattr(_ object: OverlayFileSystem.UpperObject, _ name: String) throws(FSError) -> [UInt8] {
        try run { () throws(SystemError) in try ExtendedAttributes.get(target(object), name, absentWhen: []) ?? [] }
    }

    static func getxattr(_ fd: Int32, _ name: String) throws(FSError) -> [UInt8] { try getxattr(.descriptor(fd), name) }

    static func getxattrIfPresent(_ fd: Int32, _ name: String) -> [UInt8]? {
        try? getxattr(fd, name)
    }

    static func setxattr(_ object: OverlayFileSystem.UpperObject, _ name: String, _ value: UnsafeRawBufferPointer, _ flags: Int32) throws(FSError) {
        try run { () throws(SystemError) in try ExtendedAttributes.set(target(object), name, value, flags: flags) }
    }

    static func setxattr(_ object: OverlayFileSystem.UpperObject, _ name: String, _ value: [UInt8]) throws(FSError) {
        try run { () throws(SystemError) in try ExtendedAttributes.set(target(object), name, value) }
    }

    static func setxattr(_ fd: Int32, _ name: String, _ value: [UInt8]) throws(FSError) {
        try setxattr(.descriptor(fd), name, value)
    }

    static func removexattr(_ object: OverlayFileSystem.UpperObject, _ name: String) throws(FSError) {
        try run { () throws(SystemError) in try ExtendedAttributes.remove(target(object), name) }
    }

    static func listxattr(_ object: OverlayFileSystem.UpperObject) throws(FSError) -> [String] {
        try run { () throws(SystemError) in try ExtendedAttributes.list(target(object), absentWhen: []) ?? [] }
    }

    // MARK: directories

    /// The names in a directory (without "." and ".."), with their d_type.
    static func list(_ dirFD: Int32) throws(FSError) -> [(name: [UInt8], type: UInt8)] {
        try run { () throws(SystemError) in try fd(dirFD).entries() }
    }

    /// rm -rf of one entry, by descriptors: never follows a symlink.
    static func removeTree(_ dir: Int32, _ name: [CChar]) {
        try? FileTree.remove(at: fd(dir), name, printable: String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                             oneFileSystem: false)
    }

    static func fsync(_ raw: Int32, dataOnly: Bool = false) throws(FSError) {
        try run { () throws(SystemError) in try fd(raw).sync(dataOnly: dataOnly) }
    }

    /// open(2) of a path (an orphan's /proc/self/fd link).
    static func open(_ path: String, _ flags: Int32) throws(FSError) -> Int32 {
        try run { () throws(SystemError) in try FileDescriptor.openat(.currentDirectory, path, flags).rawValue }
    }

    static func dup(_ raw: Int32) throws(FSError) -> Int32 {
        try run { () throws(SystemError) in try fd(raw).duplicate().rawValue }
    }

    static func truncate(_ raw: Int32, _ size: UInt64) throws(FSError) {
        try run { () throws(SystemError) in try fd(raw).truncate(size) }
    }

    static func statfs(_ raw: Int32) throws(FSError) -> statvfs {
        try run { () throws(SystemError) in try fd(raw).fileSystemStatistics() }
    }

    /// Fills `buffer` from `offset`; fewer bytes only at end of file.
    static func read(_ raw: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(FSError) -> Int {
        try run { () throws(SystemError) in try fd(raw).readFully(into: buffer, at: offset) }
    }

    /// One pwrite (EINTR retried): the count written, which may be short.
    static func write(_ raw: Int32, _ data: UnsafeRawBufferPointer, at offset: UInt64) throws(FSError) -> Int {
        try run { () throws(SystemError) in try fd(raw).write(data, at: offset) }
    }

    /// fsync of a directory held by an Sys.oPath descriptor (fsync needs a real open).
    static func fsyncDirectory(_ raw: Int32, dataOnly: Bool = false) throws(FSError) {
        try run { () throws(SystemError) in
            let d = try fd(raw).reopenDirectory()
            defer { d.close() }
            try d.sync(dataOnly: dataOnly)
        }
    }
}
