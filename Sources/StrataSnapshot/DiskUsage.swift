#if canImport(Glibc)
import Glibc
#endif

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
        var rootStat = stat()
        guard lstat(root, &rootStat) == 0 else {
            throw SnapshotError(.other, "\(root): cannot stat: \(String(cString: strerror(errno)))")
        }
        var stack = [root]
        while let path = stack.popLast() {
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }   // removed meanwhile
            guard st.st_dev == rootStat.st_dev else { continue }
            if seen.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted {
                size += Int64(st.st_blocks) * 512
            }
            guard (st.st_mode & S_IFMT) == S_IFDIR, let dir = opendir(path) else { continue }
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { stack.append(path + "/" + name) }
            }
            closedir(dir)
        }
        return SnapshotUsage(size: size, inodes: Int64(seen.count))
    }
}
