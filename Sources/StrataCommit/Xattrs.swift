#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Extended attributes of a path, never following a final symlink. A file system without
/// xattr support has none; an absent attribute is nil.
enum Xattrs {
    /// Names in the order the file system lists them.
    static func names(_ path: [UInt8]) throws -> [String] {
        do {
            return try ExtendedAttributes.list(.path(Paths.cPath(path)), operation: "llistxattr") ?? []
        } catch {
            throw CommitError(error)
        }
    }

    /// The value, or nil when the attribute is absent.
    static func value(_ path: [UInt8], _ name: String) throws -> [UInt8]? {
        do {
            return try ExtendedAttributes.get(.path(Paths.cPath(path)), name, operation: "lgetxattr \(name)")
        } catch {
            throw CommitError(error)
        }
    }
}
