#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// The mount table as this process sees it, and unmounting — also of a stale mount left by a
/// dead daemon, whose every access answers ENOTCONN. Nothing here touches the mounted tree:
/// paths are compared lexically against /proc/self/mountinfo.
public enum FuseMount {
    /// Whether `path` is a mount point (of any filesystem).
    public static func isMounted(_ path: String) -> Bool {
        let target = absolute(path)
        return mountPoints().contains(target)
    }

    /// Unmounts `path`. As root: umount2, then a lazy detach if busy. Otherwise fusermount3
    /// -u, then -uz. A path that is not mounted is an error naming it.
    public static func unmount(_ path: String) throws {
        let target = absolute(path)
        guard mountPoints().contains(target) else { throw FuseError(.notMounted, mountpoint: target) }
        if geteuid() == 0 {
            if umount2(target, 0) == 0 { return }
            let first = errno
            if umount2(target, Int32(MNT_DETACH)) == 0 { return }
            let second = errno
            throw FuseError(.unmountFailed("\(String(cString: strerror(first))); lazy: \(String(cString: strerror(second)))"),
                            mountpoint: target)
        }
        if run("/usr/bin/fusermount3", ["-u", target]) == 0 { return }
        if run("/usr/bin/fusermount3", ["-uz", target]) == 0 { return }
        throw FuseError(.unmountFailed("fusermount3 -u and -uz failed"), mountpoint: target)
    }

    // MARK: - Helpers

    /// Mount points from /proc/self/mountinfo (field 5, octal escapes decoded).
    static func mountPoints() -> Set<String> {
        guard let bytes = try? FileIO.readAll("/proc/self/mountinfo") else { return [] }
        var result = Set<String>()
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard fields.count > 4 else { continue }
            result.insert(unescape(fields[4]))
        }
        return result
    }

    private static func unescape(_ field: ArraySlice<UInt8>) -> String {
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

    /// An absolute, lexically normalised path. realpath() would stat the mount point, which
    /// fails with ENOTCONN on a stale mount.
    static func absolute(_ path: String) -> String {
        var full = path
        if !path.hasPrefix("/") {
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX))
            if getcwd(&buffer, buffer.count) != nil {
                full = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) + "/" + path
            }
        }
        var parts: [Substring] = []
        for part in full.split(separator: "/") {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Runs a helper program and returns its exit status (-1 if it could not start).
    static func run(_ program: String, _ arguments: [String]) -> Int32 {
        let argv = ([program] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        guard posix_spawn(&pid, program, nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            if errno != EINTR { return -1 }
        }
        // WIFEXITED / WEXITSTATUS are macros.
        return status & 0x7f == 0 ? (status >> 8) & 0xff : -1
    }
}
