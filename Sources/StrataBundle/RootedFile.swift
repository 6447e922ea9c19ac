#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Reads a file of a container's root filesystem as the container would see it: symlinks
/// are followed, but an absolute target or a `..` is taken relative to the root, never to
/// the host's. An image's /etc/passwd that is a symlink to /etc/../../host must not make
/// `strata bundle` read the host's file.
public enum RootedFile {
    static let maxSymlinks = 40
    static let maxSize = 16 << 20

    /// The file's bytes; nil when it (or a directory on its way) does not exist.
    /// - Parameter path: absolute, as in the container ("/etc/passwd").
    public static func read(root: String, path: String) throws(BundleError) -> [UInt8]? {
        guard let resolved = try resolve(root: root, path: path) else { return nil }
        var st = stat()
        guard lstat(resolved, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BundleError("\(path) in the image is not a regular file")
        }
        guard st.st_size <= maxSize else {
            throw BundleError("\(path) in the image is larger than \(maxSize >> 20) MiB")
        }
        do {
            return try FileIO.readAll(resolved)
        } catch {
            throw BundleError("cannot read \(path) in the image: \(error)")
        }
    }

    /// The host path of `path` inside `root`, every symlink resolved within the root;
    /// nil when a component is missing or not a directory.
    static func resolve(root: String, path: String) throws(BundleError) -> String? {
        var pending = path.split(separator: "/").map(String.init)
        pending.reverse()   // a stack: the next component is last
        var resolved: [String] = []
        var hops = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." { _ = resolved.popLast(); continue }
            let candidate = root + "/" + (resolved + [component]).joined(separator: "/")
            var st = stat()
            if lstat(candidate, &st) != 0 {
                if errno == ENOENT || errno == ENOTDIR { return nil }
                throw BundleError("cannot look up \(path) in the image: \(SystemError(code: errno, operation: "lstat", path: candidate))")
            }
            if (st.st_mode & S_IFMT) == S_IFLNK {
                hops += 1
                guard hops <= maxSymlinks else { throw BundleError("\(path) in the image: too many levels of symbolic links") }
                let target = try readLink(candidate)
                if target.hasPrefix("/") { resolved = [] }
                pending.append(contentsOf: target.split(separator: "/").map(String.init).reversed())
                continue
            }
            if !pending.isEmpty && (st.st_mode & S_IFMT) != S_IFDIR { return nil }
            resolved.append(component)
        }
        return root + "/" + resolved.joined(separator: "/")
    }

    static func readLink(_ path: String) throws(BundleError) -> String {
        var buffer = [UInt8](repeating: 0, count: Int(PATH_MAX))
        let n = buffer.withUnsafeMutableBufferPointer { b in
            b.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b.count) { readlink(path, $0, b.count) }
        }
        guard n >= 0 else {
            throw BundleError("cannot read symlink: \(SystemError(code: errno, operation: "readlink", path: path))")
        }
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}
