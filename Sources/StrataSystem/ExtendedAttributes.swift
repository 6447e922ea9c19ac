#if canImport(Glibc)
import Glibc
#endif

/// What an xattr call acts on; a symlink is never followed.
public enum XattrTarget {
    /// A name in a directory.
    case entry(directory: FileDescriptor, name: [CChar])
    /// The object a descriptor holds (an O_PATH one too).
    case descriptor(FileDescriptor)
    /// A path (l*xattr).
    case path([CChar])
}

/// Extended attributes, without /proc where the kernel allows: by name in a directory, or as
/// "." of a directory descriptor (the *xattrat calls, Linux 6.13). Older kernels (ENOSYS) and a
/// descriptor of a file whose last name is gone (ENOTDIR, ENOENT from ".") go through the
/// /proc/self/fd path instead. errno becomes `SystemError`, EINTR is retried.
public enum ExtendedAttributes {
    /// The value; nil when the call fails with one of `absentWhen` (ENODATA: no such attribute,
    /// ENOTSUP: a file system without xattrs).
    public static func get(_ target: XattrTarget, _ name: String, absentWhen: [Int32] = [ENODATA, ENOTSUP],
                           operation: String = "getxattr") throws(SystemError) -> [UInt8]? {
        try LinuxCalls.sizedXattrQuery(operation: operation, path: describe(target), absentWhen: absentWhen) { buffer, size in
            call(target, at: { LinuxCalls.getxattrat($0, $1, $2, name, buffer, size) },
                 byPath: { $1 ? LinuxCalls.getxattr($0, name, buffer, size) : LinuxCalls.lgetxattr($0, name, buffer, size) })
        }
    }

    /// `flags`: LinuxCalls.xattrCreate, xattrReplace, or 0.
    public static func set(_ target: XattrTarget, _ name: String, _ value: UnsafeRawBufferPointer, flags: Int32 = 0) throws(SystemError) {
        _ = try retryOnInterrupt("setxattr", path: describe(target)) {
            call(target, at: { LinuxCalls.setxattrat($0, $1, $2, name, value.baseAddress, value.count, flags) },
                 byPath: { $1 ? LinuxCalls.setxattr($0, name, value.baseAddress, value.count, flags)
                              : LinuxCalls.lsetxattr($0, name, value.baseAddress, value.count, flags) })
        }
    }

    public static func set(_ target: XattrTarget, _ name: String, _ value: [UInt8], flags: Int32 = 0) throws(SystemError) {
        let r = value.withUnsafeBytes { v in Result { () throws(SystemError) in try set(target, name, v, flags: flags) } }
        try r.get()
    }

    public static func remove(_ target: XattrTarget, _ name: String) throws(SystemError) {
        _ = try retryOnInterrupt("removexattr", path: describe(target)) {
            call(target, at: { LinuxCalls.removexattrat($0, $1, $2, name) },
                 byPath: { $1 ? LinuxCalls.removexattr($0, name) : LinuxCalls.lremovexattr($0, name) })
        }
    }

    /// The names in the order the file system lists them; nil when the call fails with one of
    /// `absentWhen`.
    public static func list(_ target: XattrTarget, absentWhen: [Int32] = [ENODATA, ENOTSUP],
                            operation: String = "listxattr") throws(SystemError) -> [String]? {
        let raw = try LinuxCalls.sizedXattrQuery(operation: operation, path: describe(target), absentWhen: absentWhen) { buffer, size in
            call(target, at: { LinuxCalls.listxattrat($0, $1, $2, buffer, size) },
                 byPath: { $1 ? LinuxCalls.listxattr($0, buffer, size) : LinuxCalls.llistxattr($0, buffer, size) })
        }
        return raw.map { $0.split(separator: 0).map { String(decoding: $0, as: UTF8.self) } }
    }

    /// Runs `at` (dir, name, AT_* flags) or, on the fallbacks, `byPath` (path, follow the last symlink).
    private static func call<T: BinaryInteger>(_ target: XattrTarget, at: (Int32, UnsafePointer<CChar>, Int32) -> T,
                                               byPath: (UnsafePointer<CChar>, Bool) -> T) -> T {
        switch target {
        case .entry(let dir, let name):
            let r = at(dir.rawValue, name, AT_SYMLINK_NOFOLLOW)
            guard r < 0, errno == ENOSYS else { return r }
            guard let fd = try? dir.pathDescriptor(at: name) else { return -1 }
            let r2 = fd.procPath.withCString { byPath($0, true) }
            let code = errno
            fd.close()
            errno = code
            return r2
        case .descriptor(let fd):
            let r = at(fd.rawValue, ".", 0)
            guard r < 0, [ENOSYS, ENOTDIR, ENOENT].contains(errno) else { return r }
            return fd.procPath.withCString { byPath($0, true) }
        case .path(let path):
            return byPath(path, false)
        }
    }

    private static func printable(_ name: [CChar]) -> String {
        String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func describe(_ target: XattrTarget) -> String? {
        switch target {
        case .entry(_, let name): return printable(name)
        case .descriptor: return nil
        case .path(let path): return printable(path)
        }
    }
}
