#if canImport(Glibc)
import Glibc
#endif

/// `rm -rf` for a snapshot directory, by descriptors and raw names: an upper holds whatever a
/// container wrote (names that are not UTF-8, read-only directories, device whiteouts).
/// Never crosses into another mount: a mountpoint still mounted is an error, not a descent
/// into the mounted tree.
enum TreeRemoval {
    static func remove(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw SnapshotError(.other, "\(path): cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            guard unlink(path) == 0 || errno == ENOENT else {
                throw SnapshotError(.other, "\(path): cannot remove: \(String(cString: strerror(errno)))")
            }
            return
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SnapshotError(.other, "\(path): cannot open: \(String(cString: strerror(errno)))") }
        try removeContents(fd, device: st.st_dev, path: path)
        close(fd)
        guard rmdir(path) == 0 || errno == ENOENT else {
            throw SnapshotError(.other, "\(path): cannot remove: \(String(cString: strerror(errno)))")
        }
    }

    /// Empties the directory open as `fd` (and closes nothing: the caller owns `fd`).
    private static func removeContents(_ fd: Int32, device: dev_t, path: String) throws {
        let dupped = dup(fd)
        guard dupped >= 0, let dir = fdopendir(dupped) else {
            throw SnapshotError(.other, "\(path): cannot read: \(String(cString: strerror(errno)))")
        }
        defer { closedir(dir) }
        var names: [[CChar]] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { Array($0.prefix { $0 != 0 }).map { CChar(bitPattern: $0) } }
            if name == [46] || name == [46, 46] { continue }
            names.append(name + [0])
        }
        for name in names {
            let printable = path + "/" + String(decoding: name.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
            var st = stat()
            guard fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                guard st.st_dev == device else {
                    throw SnapshotError(.other, "\(printable): a mount point; unmount it before removing")
                }
                let child = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                guard child >= 0 else {
                    throw SnapshotError(.other, "\(printable): cannot open: \(String(cString: strerror(errno)))")
                }
                defer { close(child) }
                try removeContents(child, device: device, path: printable)
                guard unlinkat(fd, name, AT_REMOVEDIR) == 0 || errno == ENOENT else {
                    throw SnapshotError(.other, "\(printable): cannot remove: \(String(cString: strerror(errno)))")
                }
            } else {
                guard unlinkat(fd, name, 0) == 0 || errno == ENOENT else {
                    throw SnapshotError(.other, "\(printable): cannot remove: \(String(cString: strerror(errno)))")
                }
            }
        }
    }
}
