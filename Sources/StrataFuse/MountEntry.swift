#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// One line of a mountinfo file (proc(5)): what is mounted where, read without touching the
/// mounted tree, so it works on a stale mount too.
public struct MountEntry: Sendable, Equatable {
    public var id: Int
    /// The file system's device, as st_dev reports it.
    public var major: UInt32
    public var minor: UInt32
    /// Relative to the reading process's root; octal escapes decoded.
    public var mountpoint: String
    /// Per-mount options (field 6), e.g. "rw,nosuid,nodev,relatime".
    public var options: [String]
    /// e.g. "fuse.strata", "tmpfs", "proc".
    public var fsType: String

    /// The entries of `path` (default: this process's table), in mount order: of two entries
    /// with one mountpoint, the later one is on top.
    public static func read(_ path: String = "/proc/self/mountinfo") -> [MountEntry] {
        (try? table(path)) ?? []
    }

    /// Like `read`, but a table that cannot be read (no /proc) is an error naming it.
    public static func table(_ path: String = "/proc/self/mountinfo") throws -> [MountEntry] {
        try FileIO.readAll(path).split(separator: UInt8(ascii: "\n")).compactMap(parse)
    }

    /// The entry on top at `mountpoint` (absolute, normalised), if any.
    public static func top(at mountpoint: String, in entries: [MountEntry] = read()) -> MountEntry? {
        entries.last { $0.mountpoint == mountpoint }
    }

    static func parse(_ line: ArraySlice<UInt8>) -> MountEntry? {
        let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
        // id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        guard fields.count >= 8, let separator = fields[6...].firstIndex(where: { $0.elementsEqual([UInt8(ascii: "-")]) }),
              separator + 1 < fields.count,
              let id = Int(String(decoding: fields[0], as: UTF8.self)) else { return nil }
        let device = fields[2].split(separator: UInt8(ascii: ":"))
        guard device.count == 2, let major = UInt32(String(decoding: device[0], as: UTF8.self)),
              let minor = UInt32(String(decoding: device[1], as: UTF8.self)) else { return nil }
        return MountEntry(id: id, major: major, minor: minor, mountpoint: unescape(fields[4]),
                          options: String(decoding: fields[5], as: UTF8.self).split(separator: ",").map(String.init),
                          fsType: unescape(fields[separator + 1]))
    }

    static func unescape(_ field: ArraySlice<UInt8>) -> String {
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
}
