#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem

/// Removing tags from ROOT/layout/index.json. ImageLayoutWriter only adds and moves tags, so
/// this does the same read-modify-write under the same lock it uses (flock on the layout
/// directory), so a concurrent `strata commit` into the layout loses nothing.
enum LayoutTags {
    /// Drops every index.json entry whose ref name satisfies `drop`; returns the names dropped.
    @discardableResult
    static func remove(layout: String, where drop: (String) -> Bool) throws -> [String] {
        let dir: FileDescriptor
        do { dir = try FileDescriptor.openLocked(layout, O_RDONLY | O_DIRECTORY) } catch {
            throw SnapshotError(.other, "\(layout): cannot \(error.operation == "open" ? "open to lock" : "lock") index.json", cause: error)
        }
        defer { dir.close() }
        var index = try ImageLayout(path: layout).index()
        var dropped: [String] = []
        index.manifests.removeAll { d in
            guard let name = d.refName, drop(name) else { return false }
            dropped.append(name)
            return true
        }
        guard !dropped.isEmpty else { return [] }
        do {
            try FileIO.writeAtomically(layout + "/index.json", try JSONCoding.encode(index))
        } catch {
            throw SnapshotError(.other, "\(layout)/index.json: cannot write", wrapping: error)
        }
        return dropped
    }
}
