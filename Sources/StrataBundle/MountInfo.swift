#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Mount points from /proc/self/mountinfo (field 5, octal-escaped as \040 etc.).
public enum MountInfo {
    public static func mountPoints() -> [String] {
        guard let bytes = try? FileIO.readAll("/proc/self/mountinfo") else { return [] }
        return bytes.split(separator: 0x0a).compactMap { line in
            let fields = line.split(separator: 0x20)
            return fields.count > 4 ? unescape(Array(fields[4])) : nil
        }
    }

    public static func isMountPoint(_ path: String) -> Bool {
        mountPoints().contains(path)
    }

    /// Mount points at or below `path`.
    public static func mounts(under path: String) -> [String] {
        mountPoints().filter { $0 == path || $0.hasPrefix(path + "/") }
    }

    static func unescape(_ field: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < field.count {
            if field[i] == UInt8(ascii: "\\"), i + 3 < field.count,
               let v = UInt8(String(decoding: field[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(field[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
