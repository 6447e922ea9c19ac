#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem

/// Containers that runc or crun still keeps on a bundle. A stopped container holds nothing
/// open on the rootfs, yet `runc start`/`runc run` of it would find its upper gone: while a
/// runtime lists one, the bundle is not removed. The bundle cannot know the IDs it will be
/// run under, so each runtime's `list` (over its state roots) is asked for containers whose
/// bundle is this directory.
public enum RuntimeContainers {
    public struct Container: Sendable, Equatable, CustomStringConvertible {
        public var runtime: String
        public var id: String
        public var status: String
        public var description: String { "\(id) (\(runtime), \(status))" }
    }

    /// The runtimes asked, with the state roots they use by default as root (and, for other
    /// users, under XDG_RUNTIME_DIR).
    static let runtimes = ["runc", "crun"]

    /// Containers of any runtime found whose bundle is `bundle` (compared as a directory, so
    /// a path through a symlink matches too). A runtime that is missing or cannot list is
    /// skipped.
    public static func using(bundle: String) -> [Container] {
        guard let target = try? FileDescriptor.currentDirectory.stat(at: bundle, flags: 0) else { return [] }
        var found: [Container] = []
        for runtime in runtimes {
            guard let executable = find(runtime) else { continue }
            for root in roots(runtime) where FileIO.isDirectory(root) {
                for entry in list(executable, root: root) {
                    guard let path = entry.bundle, let st = try? FileDescriptor.currentDirectory.stat(at: path, flags: 0),
                          st.st_dev == target.st_dev, st.st_ino == target.st_ino else { continue }
                    let container = Container(runtime: runtime, id: entry.id, status: entry.status ?? "unknown")
                    if !found.contains(container) { found.append(container) }
                }
            }
        }
        return found
    }

    /// One element of `RUNTIME list --format json` (runc prints `null` when there is none).
    struct Entry: Decodable {
        var id: String
        var status: String?
        var bundle: String?
    }

    static func list(_ executable: String, root: String) -> [Entry] {
        guard let (status, _, output) = try? ProgramRun.run(executable, ["--root", root, "list", "--format", "json"], output: true),
              status == 0 else { return [] }
        let decoded = try? JSONCoding.decode([Entry]?.self, from: Array(output.utf8), what: "\(executable) list")
        return (decoded ?? nil) ?? []
    }

    static func roots(_ runtime: String) -> [String] {
        var result = ["/run/" + runtime]
        if let xdg = getenv("XDG_RUNTIME_DIR"), xdg.pointee != 0 {
            let dir = String(cString: xdg) + "/" + runtime
            if dir != result[0] { result.append(dir) }
        }
        return result
    }

    static func find(_ name: String) -> String? {
        for dir in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            where access(dir + "/" + name, X_OK) == 0 {
            return dir + "/" + name
        }
        return nil
    }
}
