#if canImport(Glibc)
import Glibc
#endif

/// File names are bytes (a layer may hold names that are not UTF-8), so paths are kept as
/// [UInt8] and only turned into strings for messages.
enum Paths {
    static func join(_ base: [UInt8], _ name: [UInt8]) -> [UInt8] {
        if base.isEmpty { return name }
        return base + [UInt8(ascii: "/")] + name
    }

    static func printable(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func withCString<R>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
        try (path + [0]).withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
        }
    }

    /// lstat; nil when nothing is there.
    static func lstatIfExists(_ path: [UInt8]) throws -> stat? {
        var st = stat()
        if withCString(path, { lstat($0, &st) }) == 0 { return st }
        if errno == ENOENT || errno == ENOTDIR { return nil }
        throw CommitError("\(printable(path)): lstat: \(String(cString: strerror(errno)))")
    }

    static func lstatOrThrow(_ path: [UInt8]) throws -> stat {
        guard let st = try lstatIfExists(path) else {
            throw CommitError("\(printable(path)): lstat: \(String(cString: strerror(ENOENT)))")
        }
        return st
    }

    /// The names in a directory, without "." and "..", sorted bytewise so output is stable.
    static func list(_ path: [UInt8]) throws -> [[UInt8]] {
        guard let dir = withCString(path, { opendir($0) }) else {
            throw CommitError("\(printable(path)): opendir: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw CommitError("\(printable(path)): readdir: \(String(cString: strerror(errno)))") }
                break
            }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        return names.sorted { $0.lexicographicallyPrecedes($1) }
    }

    static func isDirectory(_ st: stat) -> Bool { (st.st_mode & S_IFMT) == S_IFDIR }

    /// glibc's major()/minor() encoding of a dev_t (the macros are not imported).
    static func major(_ dev: UInt64) -> UInt32 { UInt32(((dev >> 8) & 0xfff) | ((dev >> 32) & ~UInt64(0xfff))) }
    static func minor(_ dev: UInt64) -> UInt32 { UInt32((dev & 0xff) | ((dev >> 12) & ~UInt64(0xff))) }
}
