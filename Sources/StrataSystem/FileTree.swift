#if canImport(Glibc)
import Glibc
#endif

/// `rm -rf` by descriptors and raw names: symlinks are removed, never followed; names need
/// not be UTF-8; what is already gone is fine.
public enum FileTree {
    public enum Failure: Error, Sendable, Equatable {
        /// A call failed; its path is the entry's (from the path given).
        case system(SystemError)
        /// With `oneFileSystem`: a directory on another file system (something mounted inside),
        /// which stops the removal instead of being emptied.
        case mountPoint(String)
    }

    public static func remove(_ path: String, oneFileSystem: Bool = true) throws(Failure) {
        try remove(at: .currentDirectory, FileDescriptor.cName(Array(path.utf8)), printable: path, device: nil,
                   oneFileSystem: oneFileSystem)
    }

    /// The entry `name` of `directory`; `printable` names it in errors.
    public static func remove(at directory: FileDescriptor, _ name: [CChar], printable: String,
                              oneFileSystem: Bool = true) throws(Failure) {
        try remove(at: directory, name, printable: printable, device: nil, oneFileSystem: oneFileSystem)
    }

    private static func remove(at directory: FileDescriptor, _ name: [CChar], printable: String, device: dev_t?,
                               oneFileSystem: Bool) throws(Failure) {
        func failure(_ error: SystemError) -> Failure {
            .system(SystemError(code: error.code, operation: error.operation, path: printable))
        }
        let st: stat
        do {
            guard let found = try directory.statIfPresent(at: name) else { return }
            st = found
        } catch { throw failure(error) }
        let isDirectory = st.st_mode & S_IFMT == S_IFDIR
        if isDirectory {
            if oneFileSystem, let device, st.st_dev != device { throw .mountPoint(printable) }
            let fd: FileDescriptor
            let entries: [(name: [UInt8], type: UInt8)]
            do { fd = try FileDescriptor.openat(directory, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW) } catch { throw failure(error) }
            defer { fd.close() }
            do { entries = try fd.entries() } catch { throw failure(error) }
            for entry in entries {
                try remove(at: fd, FileDescriptor.cName(entry.name), printable: printable + "/" + String(decoding: entry.name, as: UTF8.self),
                           device: st.st_dev, oneFileSystem: oneFileSystem)
            }
        }
        do { try directory.unlink(at: name, directory: isDirectory) } catch where error.code == ENOENT {} catch { throw failure(error) }
    }
}
