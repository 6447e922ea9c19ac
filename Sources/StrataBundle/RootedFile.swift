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
        guard let st = try? FileDescriptor.currentDirectory.stat(at: resolved) else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw BundleError("\(path) in the image is not a regular file")
        }
        guard st.st_size <= maxSize else {
            throw BundleError("\(path) in the image is larger than \(maxSize >> 20) MiB")
        }
        do {
            return try FileIO.readAll(resolved)
        } catch {
            throw BundleError("cannot read \(path) in the image", wrapping: error)
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
            let st: stat
            do {
                guard let found = try FileDescriptor.currentDirectory.statIfPresent(at: candidate, absentWhenNotDirectory: true) else { return nil }
                st = found
            } catch {
                throw BundleError("cannot look up \(path) in the image: \(candidate): lstat", cause: error)
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
        do {
            return String(decoding: try FileDescriptor.currentDirectory.readLink(at: path), as: UTF8.self)
        } catch {
            throw BundleError("cannot read symlink \(path)", cause: error)
        }
    }
}
