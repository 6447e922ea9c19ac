#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Reads /proc/self/mountinfo: the kernel's word on what is mounted, which a mount
/// helper's exit status alone is not (a FUSE daemon can exit after reporting success).
public enum MountTable {
    /// Mount points, unescaped, in mountinfo order (parents before children).
    public static func mountPoints() -> [String] {
        guard let bytes = try? FileIO.readAll("/proc/self/mountinfo") else { return [] }
        var points: [String] = []
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            if fields.count > 4 { points.append(unescape(Array(fields[4]))) }
        }
        return points
    }

    public static func isMounted(_ path: String) -> Bool {
        let target = canonical(path)
        return mountPoints().contains(target)
    }

    /// Mount points at or below `directory`, deepest first (the order to unmount them).
    public static func mounts(under directory: String) -> [String] {
        let base = canonical(directory)
        let prefix = base.hasSuffix("/") ? base : base + "/"
        return mountPoints().filter { $0 == base || $0.hasPrefix(prefix) }.reversed()
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ field: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < field.count {
            if field[i] == UInt8(ascii: "\\"), i + 3 < field.count {
                let digits = field[(i + 1)...(i + 3)]
                if let value = UInt8(String(decoding: digits, as: UTF8.self), radix: 8) {
                    out.append(value)
                    i += 4
                    continue
                }
            }
            out.append(field[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The absolute, symlink-free spelling the kernel uses. The last component is not
    /// resolved: a dead FUSE mount fails every stat of its root (ENOTCONN).
    static func canonical(_ path: String) -> String {
        var trimmed = path
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let slash = trimmed.lastIndex(of: "/") else {
            return canonical(currentDirectory() + "/" + trimmed)
        }
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        let name = String(trimmed[trimmed.index(after: slash)...])
        if name.isEmpty { return "/" }
        guard let resolved = realpath(parent, nil) else { return trimmed }
        defer { free(resolved) }
        let base = String(cString: resolved)
        return base == "/" ? "/" + name : base + "/" + name
    }

    private static func currentDirectory() -> String {
        guard let cwd = getcwd(nil, 0) else { return "/" }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}
