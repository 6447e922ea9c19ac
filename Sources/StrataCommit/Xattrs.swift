#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Extended attributes of a path, never following a final symlink.
enum Xattrs {
    /// Names in the order the filesystem lists them. A filesystem without xattr support has none.
    static func names(_ path: [UInt8]) throws -> [String] {
        let raw = try sized(path, "llistxattr") { p, buffer, size in LinuxCalls.llistxattr(p, buffer, size) }
        guard let raw else { return [] }
        return raw.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The value, or nil when the attribute is absent.
    static func value(_ path: [UInt8], _ name: String) throws -> [UInt8]? {
        try sized(path, "lgetxattr \(name)") { p, buffer, size in LinuxCalls.lgetxattr(p, name, buffer, size) }
    }

    /// `LinuxCalls.sizedXattrQuery` on the path: nil for ENODATA/ENOTSUP (absent, which callers
    /// treat alike); other errors become this module's one-line CommitError.
    private static func sized(_ path: [UInt8], _ operation: String,
                              _ body: (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int) throws -> [UInt8]? {
        do {
            return try Paths.withCString(path) { p in
                try LinuxCalls.sizedXattrQuery(operation: operation, path: Paths.printable(path)) { buffer, size in body(p, buffer, size) }
            }
        } catch let error as SystemError {
            throw CommitError(error.description)
        }
    }
}
