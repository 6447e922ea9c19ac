import StrataUnion
import Synchronization

/// Records the first read of each regular file of a mount, in order (`strata mount
/// --record-reads`): what `strata convert --record-in` puts first in the image's layers.
public final class ReadRecorder: Sendable {
    private struct State {
        var seen: Set<UInt32> = []
        var order: [UInt32] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Notes a read of tree inode `inode` (a second read of it adds nothing).
    func note(_ inode: UInt32) {
        state.withLock { s in
            if s.seen.insert(inode).inserted { s.order.append(inode) }
        }
    }

    /// How many files were read so far.
    public var count: Int { state.withLock { $0.order.count } }

    /// The files read, in order: each one's path in the merged tree (no leading "/") and the
    /// index of the layer it comes from (0 = the bottom one). The parents of all inodes are
    /// found in one walk of the tree (a file has no parent pointer; a hardlinked file gets the
    /// first of its names met).
    public func files(in tree: MergedTree) -> [(path: String, layer: Int)] {
        let order = state.withLock { $0.order }
        guard !order.isEmpty else { return [] }
        let wanted = Set(order)
        var parent: [UInt32: (dir: UInt32, name: String)] = [:]
        var stack: [UInt32] = [0]
        var visited: Set<UInt32> = [0]
        while let dir = stack.popLast() {
            for child in tree.children(of: dir) {
                if tree.isDirectory(child.inode) {
                    guard visited.insert(child.inode).inserted else { continue }
                    parent[child.inode] = (dir, String(decoding: child.name, as: UTF8.self))
                    stack.append(child.inode)
                } else if wanted.contains(child.inode), parent[child.inode] == nil {
                    parent[child.inode] = (dir, String(decoding: child.name, as: UTF8.self))
                }
            }
        }
        return order.compactMap { inode in
            var names: [String] = []
            var current = inode
            while current != 0, let p = parent[current] {
                names.append(p.name)
                current = p.dir
            }
            guard current == 0, !names.isEmpty else { return nil }
            return (names.reversed().joined(separator: "/"), tree.layer(inode))
        }
    }
}
