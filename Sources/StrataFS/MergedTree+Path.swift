import StrataUnion

extension MergedTree {
    /// The path of `inode` in the merged view ("/" for the root), for error messages: a file
    /// has no parent pointer, so its directory is searched for. Slow; only for the error path.
    public func path(of inode: UInt32) -> String {
        var names: [String] = []
        var current = inode
        var steps = 0
        while current != 0, steps < 4096 {
            steps += 1
            let parent: UInt32
            if isDirectory(current) {
                parent = parentOf(current)
            } else if let found = (0..<UInt32(inodeCount)).first(where: { isDirectory($0) && children(of: $0).contains { $0.inode == current } }) {
                parent = found
            } else {
                return "inode \(inode + 1)"
            }
            guard let child = children(of: parent).first(where: { $0.inode == current }) else { return "inode \(inode + 1)" }
            names.append(String(decoding: child.name, as: UTF8.self))
            if parent == current { break }
            current = parent
        }
        return "/" + names.reversed().joined(separator: "/")
    }
}
