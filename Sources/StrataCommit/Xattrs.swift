#if canImport(Glibc)
import Glibc
#endif

// sys/xattr.h is not part of Swift's Glibc module and this target has no C module of its own,
// so the two calls are looked up in libc once, typed with their C signatures.
private typealias ListXattr = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
private typealias GetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int

private func libcSymbol<T>(_ name: String, as type: T.Type) -> T {
    guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else {
        fatalError("libc has no \(name)")
    }
    return unsafeBitCast(symbol, to: type)
}

nonisolated(unsafe) private let listXattr = libcSymbol("llistxattr", as: ListXattr.self)
nonisolated(unsafe) private let getXattr = libcSymbol("lgetxattr", as: GetXattr.self)

/// Extended attributes of a path, never following a final symlink.
enum Xattrs {
    /// Names in the order the filesystem lists them. A filesystem without xattr support has none.
    static func names(_ path: [UInt8]) throws -> [String] {
        let raw = try sized(path, "llistxattr") { p, buffer, size in listXattr(p, buffer, size) }
        guard let raw else { return [] }
        return raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value, or nil when the attribute is absent.
    static func value(_ path: [UInt8], _ name: String) throws -> [UInt8]? {
        try sized(path, "lgetxattr \(name)") { p, buffer, size in getXattr(p, name, buffer, size) }
    }

    /// Calls `body` for the size, then for the bytes, retrying while the value grows (ERANGE).
    /// nil for ENODATA/ENOTSUP: absent, which callers treat alike.
    private static func sized(_ path: [UInt8], _ operation: String,
                              _ body: (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int) throws -> [UInt8]? {
        for _ in 0..<8 {
            let size = Paths.withCString(path) { body($0, nil, 0) }
            if size < 0 {
                if errno == ENODATA || errno == ENOTSUP { return nil }
                throw CommitError("\(Paths.printable(path)): \(operation): \(String(cString: strerror(errno)))")
            }
            if size == 0 { return [] }
            var buffer = [CChar](repeating: 0, count: size)
            let got = Paths.withCString(path) { p in buffer.withUnsafeMutableBufferPointer { body(p, $0.baseAddress, size) } }
            if got >= 0 { return buffer[0..<got].map { UInt8(bitPattern: $0) } }
            if errno == ERANGE { continue }
            if errno == ENODATA || errno == ENOTSUP { return nil }
            throw CommitError("\(Paths.printable(path)): \(operation): \(String(cString: strerror(errno)))")
        }
        throw CommitError("\(Paths.printable(path)): \(operation): value keeps changing size")
    }
}
