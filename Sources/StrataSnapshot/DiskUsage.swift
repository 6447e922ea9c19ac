#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// containerd's Usage: the bytes a snapshot's own data takes on disk and the inodes it uses.
public struct SnapshotUsage: Sendable, Equatable, Codable {
    public var size: Int64
    public var inodes: Int64
    public init(size: Int64, inodes: Int64) { self.size = size; self.inodes = inodes }
}

enum DiskUsage {
    /// Allocated bytes (st_blocks, as du counts them) and distinct inodes under `root`, root
    /// included; hard links count once. Does not follow symlinks or leave the file system.
    static func of(_ root: String) throws -> SnapshotUsage {
        var seen = Set<[UInt64]>()
        var size: Int64 = 0
        let here = FileDescriptor.currentDirectory
        let rootStat: stat
        do { rootStat = try here.stat(at: root) } catch {
            throw SnapshotError(.other, "\(root): cannot stat", cause: error)
        }
        var stack = [root]
        while let path = stack.popLast() {
            guard let st = try? here.stat(at: path) else { continue }   // removed meanwhile
            guard st.st_dev == rootStat.st_dev else { continue }
            if seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted {
                size += Int64(st.st_blocks) * 512
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR, let dir = try? FileDescriptor.openat(here, path, O_RDONLY | O_DIRECTORY) else { continue }
            defer { dir.close() }
            for entry in (try? dir.entries()) ?? [] {
                stack.append(path + "/" + String(decoding: entry.name, as: UTF8.self))
            }
        }
        return SnapshotUsage(size: size, inodes: Int64(seen.count))
    }
}
