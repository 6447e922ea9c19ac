#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// `rm -rf` for a snapshot directory, by descriptors and raw names: an upper holds whatever a
/// container wrote (names that are not UTF-8, read-only directories, device whiteouts).
/// Never crosses into another mount: a mountpoint still mounted is an error, not a descent
/// into the mounted tree.
enum TreeRemoval {
    static func remove(_ path: String) throws {
        let here = FileDescriptor.currentDirectory
        let st: stat
        do {
            guard let found = try here.statIfPresent(at: path) else { return }
            st = found
        } catch {
            throw SnapshotError(.other, "\(path): cannot stat", cause: error)
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            try removeEntry(here, path, directory: false, printable: path)
            return
        }
        let fd: FileDescriptor
        do { fd = try FileDescriptor.openat(here, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch {
            throw SnapshotError(.other, "\(path): cannot open", cause: error)
        }
        defer { fd.close() }
        try removeContents(fd, device: st.st_dev, path: path)
        try removeEntry(here, path, directory: true, printable: path)
    }

    /// unlink or rmdir; already gone is fine.
    private static func removeEntry(_ dir: FileDescriptor, _ name: UnsafePointer<CChar>, directory: Bool, printable: String) throws {
        do { try dir.unlink(at: name, directory: directory) } catch where error.code == ENOENT {} catch {
            throw SnapshotError(.other, "\(printable): cannot remove", cause: error)
        }
    }

    /// Empties the directory open as `fd` (and closes nothing: the caller owns `fd`).
    private static func removeContents(_ fd: FileDescriptor, device: dev_t, path: String) throws {
        let entries: [(name: [UInt8], type: UInt8)]
        do { entries = try fd.entries() } catch {
            throw SnapshotError(.other, "\(path): cannot read", cause: error)
        }
        for entry in entries {
            let name = FileDescriptor.cName(entry.name)
            let printable = path + "/" + String(decoding: entry.name, as: UTF8.self)
            guard let st = try? fd.stat(at: name) else { continue }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                guard st.st_dev == device else {
                    throw SnapshotError(.other, "\(printable): a mount point; unmount it before removing")
                }
                let child: FileDescriptor
                do { child = try FileDescriptor.openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch {
                    throw SnapshotError(.other, "\(printable): cannot open", cause: error)
                }
                defer { child.close() }
                try removeContents(child, device: device, path: printable)
                try removeEntry(fd, name, directory: true, printable: printable)
            } else {
                try removeEntry(fd, name, directory: false, printable: printable)
            }
        }
    }
}
