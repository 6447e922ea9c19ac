#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// File names are bytes (a layer may hold names that are not UTF-8), so paths are kept as
/// [UInt8] and only turned into strings for messages.
enum Paths {
    static func join(_ base: [UInt8], _ name: [UInt8]) -> [UInt8] {
        if base.isEmpty { return name }
        return base + [UInt8(ascii: "/")] + name
    }

    static func printable(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func cPath(_ path: [UInt8]) -> [CChar] { FileDescriptor.cName(path) }

    /// lstat; nil when nothing is there.
    static func lstatIfExists(_ path: [UInt8]) throws -> stat? {
        do {
            return try FileDescriptor.currentDirectory.statIfPresent(at: cPath(path), absentWhenNotDirectory: true)
        } catch {
            throw CommitError("\(printable(path)): lstat", cause: error)
        }
    }

    static func lstatOrThrow(_ path: [UInt8]) throws -> stat {
        guard let st = try lstatIfExists(path) else {
            throw CommitError("\(printable(path)): lstat", cause: SystemError(code: ENOENT, operation: "lstat", path: printable(path)))
        }
        return st
    }

    /// The names in a directory, without "." and "..", sorted bytewise so output is stable.
    static func list(_ path: [UInt8]) throws -> [[UInt8]] {
        let entries: [(name: [UInt8], type: UInt8)]
        do {
            let dir = try FileDescriptor.openat(.currentDirectory, cPath(path), O_RDONLY | O_DIRECTORY)
            defer { dir.close() }
            entries = try dir.entries()
        } catch {
            throw CommitError("\(printable(path)): \(error.operation == "openat" ? "opendir" : error.operation)", cause: error)
        }
        return entries.map(\.name).sorted { $0.lexicographicallyPrecedes($1) }
    }

    /// A symlink's target.
    static func readLink(_ path: [UInt8]) throws -> [UInt8] {
        do {
            return try FileDescriptor.currentDirectory.readLink(at: cPath(path))
        } catch {
            throw CommitError("\(printable(path)): readlink", cause: error)
        }
    }

    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }
}
