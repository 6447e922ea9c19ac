#if canImport(Glibc)
import Glibc
#endif

/// One line of a mountinfo file (proc(5)): what is mounted where, read without touching the
/// mounted tree, so it works on a stale mount too.
public struct MountEntry: Sendable, Equatable {
    public var id: Int
    public var parentID: Int
    /// The file system's device, as st_dev reports it.
    public var major: UInt32
    public var minor: UInt32
    /// The directory of the file system mounted here (field 4, "/" for a whole one).
    public var root: String
    /// Relative to the reading process's root; octal escapes decoded.
    public var mountpoint: String
    /// Per-mount options (field 6), e.g. "rw,nosuid,nodev,relatime".
    public var options: [String]
    /// The optional fields before "-" (e.g. "shared:5", "master:1").
    public var optionalFields: [String]
    /// e.g. "fuse.strata", "tmpfs", "proc".
    public var fsType: String
    /// e.g. "/dev/sda1", "tmpfs", the FUSE daemon's name.
    public var source: String
    /// Per-superblock options, e.g. "rw,size=1024k".
    public var superOptions: [String]

    public init(id: Int, parentID: Int, major: UInt32, minor: UInt32, root: String, mountpoint: String, options: [String],
                optionalFields: [String], fsType: String, source: String, superOptions: [String]) {
        self.id = id; self.parentID = parentID; self.major = major; self.minor = minor; self.root = root
        self.mountpoint = mountpoint; self.options = options; self.optionalFields = optionalFields
        self.fsType = fsType; self.source = source; self.superOptions = superOptions
    }
}

/// The one reader of /proc/self/mountinfo: the kernel's word on what is mounted, which a mount
/// helper's exit status alone is not (a FUSE daemon can exit after reporting success).
public enum MountTable {
    public static let selfPath = "/proc/self/mountinfo"

    /// The entries of `path` (default: this process's table), in mount order (parents before
    /// children; of two entries with one mountpoint, the later one is on top). Empty when the
    /// table cannot be read (no /proc).
    public static func read(_ path: String = selfPath) -> [MountEntry] {
        (try? table(path)) ?? []
    }

    /// Like `read`, but a table that cannot be read is an error naming it.
    public static func table(_ path: String = selfPath) throws -> [MountEntry] {
        parse(try FileIO.readAll(path))
    }

    /// The entries of a mountinfo text; malformed lines are left out.
    public static func parse(_ text: [UInt8]) -> [MountEntry] {
        text.split(separator: UInt8(ascii: "\n")).compactMap(parse(line:))
    }

    /// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
    public static func parse(line: ArraySlice<UInt8>) -> MountEntry? {
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        guard fields.count >= 8, let separator = fields[6...].firstIndex(where: { $0.elementsEqual([UInt8(ascii: "-")]) }),
              separator + 1 < fields.count,
              let id = Int(String(decoding: fields[0], as: UTF8.self)),
              let parentID = Int(String(decoding: fields[1], as: UTF8.self)) else { return nil }
        let device = fields[2].split(separator: UInt8(ascii: ":"))
        guard device.count == 2, let major = UInt32(String(decoding: device[0], as: UTF8.self)),
              let minor = UInt32(String(decoding: device[1], as: UTF8.self)) else { return nil }
        func list(_ field: ArraySlice<UInt8>) -> [String] {
            String(decoding: field, as: UTF8.self).split(separator: ",").map(String.init)
        }
        let field = { (i: Int) -> ArraySlice<UInt8> in i < fields.count ? fields[i] : [] }
        return MountEntry(id: id, parentID: parentID, major: major, minor: minor, root: unescape(fields[3]),
                          mountpoint: unescape(fields[4]), options: list(fields[5]),
                          optionalFields: fields[6..<separator].map { String(decoding: $0, as: UTF8.self) },
                          fsType: unescape(fields[separator + 1]), source: unescape(field(separator + 2)),
                          superOptions: list(field(separator + 3)))
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    public static func unescape(_ field: ArraySlice<UInt8>) -> String {
        var out = [UInt8]()
        out.reserveCapacity(field.count)
        var index = field.startIndex
        while index < field.endIndex {
            let byte = field[index]
            if byte == UInt8(ascii: "\\"), index + 3 < field.endIndex {
                let digits = field[(index + 1)...(index + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    out.append(digits.reduce(0) { $0 &* 8 &+ ($1 - UInt8(ascii: "0")) })
                    index += 4
                    continue
                }
            }
            out.append(byte)
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The entry on top at `mountpoint` (absolute, normalised), if any.
    public static func top(at mountpoint: String, in entries: [MountEntry] = read()) -> MountEntry? {
        entries.last { $0.mountpoint == mountpoint }
    }

    /// Mount points, in mount order.
    public static func mountPoints() -> [String] {
        read().map(\.mountpoint)
    }

    /// Whether `path`, spelled as the kernel spells it (absolute, normalised), is a mount point.
    public static func isMountPoint(_ path: String) -> Bool {
        read().contains { $0.mountpoint == path }
    }

    /// Whether `path` (any spelling; see `canonical`) is a mount point.
    public static func isMounted(_ path: String) -> Bool {
        isMountPoint(canonical(path))
    }

    /// Mount points at or below `directory` (any spelling), deepest first (the order to unmount them).
    public static func mounts(under directory: String) -> [String] {
        let base = canonical(directory)
        let prefix = base.hasSuffix("/") ? base : base + "/"
        return mountPoints().filter { $0 == base || $0.hasPrefix(prefix) }.reversed()
    }

    /// The absolute, symlink-free spelling the kernel uses. The last component is not
    /// resolved: a dead FUSE mount fails every stat of its root (ENOTCONN).
    public static func canonical(_ path: String) -> String {
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

/// Calls on mounted file systems by path.
public enum FileSystemMount {
    /// umount2(2); `detach` is MNT_DETACH (lazy: the mount goes now, its users keep it until they let go).
    public static func unmount(_ path: String, detach: Bool = false) throws(SystemError) {
        _ = try retryOnInterrupt("umount2", path: path) { umount2(path, detach ? Int32(MNT_DETACH) : 0) }
    }

    /// statvfs(2): never answered from the attribute cache, so a dead FUSE daemon's mount
    /// answers ENOTCONN at once.
    public static func statistics(_ path: String) throws(SystemError) -> statvfs {
        var s = statvfs()
        _ = try retryOnInterrupt("statvfs", path: path) { statvfs(path, &s) }
        return s
    }
}
