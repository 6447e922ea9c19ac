#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// The processes holding a file system: an open file, a mapping, a working directory or a
/// root on it — in any mount namespace (a container's root is a copy of the host's mount,
/// which unmounting the host's one would leave serving). Read from /proc; without it, none
/// are found.
enum MountUsers {
    /// PIDs (ascending, this process left out) using the file system of device major:minor.
    static func processes(major: UInt32, minor: UInt32) -> [Int32] {
        let me = getpid()
        var tables: [String: Set<Int>] = [:]   // mount namespace → ids of its mounts of the device
        var users: [Int32] = []
        for pid in pids() where pid != me {
            let base = "/proc/\(pid)"
            // Only a process whose namespace holds the file system can use it (an fd opened
            // before it was unmounted there aside); its mount ids name the fd's mount.
            let namespace = readLink(base + "/ns/mnt") ?? base
            let ids: Set<Int>
            if let known = tables[namespace] {
                ids = known
            } else {
                ids = Set(MountTable.read(base + "/mountinfo").filter { $0.major == major && $0.minor == minor }.map(\.id))
                tables[namespace] = ids
            }
            guard !ids.isEmpty else { continue }
            if onDevice(base + "/cwd", major, minor) || onDevice(base + "/root", major, minor)
                || holdsFile(base, ids) || maps(base, major, minor) {
                users.append(pid)
            }
        }
        return users.sorted()
    }

    private static func pids() -> [Int32] {
        names("/proc").compactMap { Int32($0) }
    }

    /// statx follows /proc's magic link to the directory itself, wherever it is mounted.
    /// AT_STATX_DONT_SYNC: the device is the superblock's, so no file system (a hung FUSE
    /// daemon, an unreachable NFS server) need be asked.
    private static func onDevice(_ link: String, _ major: UInt32, _ minor: UInt32) -> Bool {
        var buffer = [UInt8](repeating: 0, count: max(LinuxCalls.statxSize, 256))
        let status = buffer.withUnsafeMutableBytes { raw in
            LinuxCalls.statx(AT_FDCWD, link, LinuxCalls.statxDontSync, 0, raw.baseAddress!)
        }
        guard status == 0 else { return false }
        // struct statx: stx_dev_major at 136, stx_dev_minor at 140.
        let (ma, mi) = buffer.withUnsafeBytes { ($0.load(fromByteOffset: 136, as: UInt32.self), $0.load(fromByteOffset: 140, as: UInt32.self)) }
        return ma == major && mi == minor
    }

    /// An open descriptor whose mount (fdinfo's mnt_id) is one of `ids`; fdinfo is read
    /// without touching the file.
    private static func holdsFile(_ base: String, _ ids: Set<Int>) -> Bool {
        for name in names(base + "/fdinfo") {
            guard Int(name) != nil, let bytes = try? FileIO.readAll(base + "/fdinfo/" + name) else { continue }
            for line in bytes.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("mnt_id:".utf8)) {
                let value = String(decoding: line.dropFirst(7), as: UTF8.self).trimmingSpaces
                if let id = Int(value), ids.contains(id) { return true }
            }
        }
        return false
    }

    /// A mapping (an executable, a library, an mmap'd file): maps' 4th column is the device in hex.
    private static func maps(_ base: String, _ major: UInt32, _ minor: UInt32) -> Bool {
        guard let bytes = try? FileIO.readAll(base + "/maps") else { return false }
        for line in bytes.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 4)
            guard fields.count >= 4 else { continue }
            let device = fields[3].split(separator: UInt8(ascii: ":"))
            guard device.count == 2,
                  let ma = UInt32(String(decoding: device[0], as: UTF8.self), radix: 16),
                  let mi = UInt32(String(decoding: device[1], as: UTF8.self), radix: 16) else { continue }
            if ma == major && mi == minor { return true }
        }
        return false
    }

    private static func readLink(_ path: String) -> String? {
        guard let target = try? FileDescriptor.currentDirectory.readLink(at: path), !target.isEmpty else { return nil }
        return String(decoding: target, as: UTF8.self)
    }

    /// The names in a directory; none when it cannot be read.
    private static func names(_ path: String) -> [String] {
        guard let dir = try? FileDescriptor.openat(.currentDirectory, path, O_RDONLY | O_DIRECTORY) else { return [] }
        defer { dir.close() }
        return ((try? dir.entries()) ?? []).map { String(decoding: $0.name, as: UTF8.self) }
    }
}

private extension String {
    var trimmingSpaces: String {
        String(drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
    }
}
