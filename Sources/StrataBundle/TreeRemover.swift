#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// `rm -rf --one-file-system` for what a bundle owns (its upper): symlinks are removed,
/// never followed, and a directory on another filesystem (something mounted inside the
/// upper) stops the removal instead of being emptied.
public enum TreeRemover {
    public static func remove(_ path: String) throws(BundleError) {
        var st = stat()
        guard lstat(path, &st) == 0 else {
            if errno == ENOENT { return }
            throw BundleError("cannot remove \(path): \(SystemError(code: errno, operation: "lstat", path: path))")
        }
        guard (st.st_mode & S_IFMT) == S_IFDIR else {
            guard unlink(path) == 0 else { throw BundleError("\(SystemError(code: errno, operation: "unlink", path: path))") }
            return
        }
        try removeContents(of: path, device: st.st_dev)
        guard rmdir(path) == 0 else { throw BundleError("\(SystemError(code: errno, operation: "rmdir", path: path))") }
    }

    private static func removeContents(of dir: String, device: dev_t) throws(BundleError) {
        guard let stream = opendir(dir) else {
            throw BundleError("\(SystemError(code: errno, operation: "opendir", path: dir))")
        }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(stream)
        for name in names {
            let child = dir + "/" + name
            var st = stat()
            guard lstat(child, &st) == 0 else {
                if errno == ENOENT { continue }
                throw BundleError("\(SystemError(code: errno, operation: "lstat", path: child))")
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                guard st.st_dev == device else {
                    throw BundleError("cannot remove \(child): another filesystem is mounted there")
                }
                try removeContents(of: child, device: device)
                guard rmdir(child) == 0 else { throw BundleError("\(SystemError(code: errno, operation: "rmdir", path: child))") }
            } else {
                guard unlink(child) == 0 else { throw BundleError("\(SystemError(code: errno, operation: "unlink", path: child))") }
            }
        }
    }
}
