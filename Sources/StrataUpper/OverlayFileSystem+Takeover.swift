import StrataFS
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// A server that takes a live writable mount over (after a crash or on `strata restart`)
/// starts with an empty node table, while the kernel holds node numbers and open file handles
/// the previous server gave it. Everything needed to find them again is on disk:
/// - a node from the image keeps its lower number (tree inode + 1): its path in the lower tree,
///   looked up again in the view, gives the node back (unless it was renamed since);
/// - a node only in the upper is numbered from its upper st_ino: the upper directory is
///   searched for that inode and its path looked up again;
/// - a node open but unlinked has a link in the work directory's scratch named after its
///   number (`NodeTable.orphanName`), which the server taking over does not clear;
/// - an open handle is rebuilt from the request's node (file handles carry no other state
///   here; a directory handle's listing is taken again).
/// Numbers that cannot be found answer ESTALE, as before.
extension OverlayFileSystem {
    /// Installs the recovery (called by `init` when taking over).
    func enableTakeoverRecovery() {
        locked { t in
            t.recover = { [unowned self] t, id in self.recoverNode(t, id) }
        }
    }

    func recoverNode(_ t: NodeTable, _ id: UInt64) -> OverlayInode? {
        if let n = recoverOrphan(t, id) { return n }
        let path: [[UInt8]]?
        if id & Self.upperInodeBit == 0 {
            guard id >= 2, id - 1 < UInt64(tree.inodeCount) else { return nil }
            path = lowerComponents(UInt32(id - 1))
        } else if id & NodeTable.aliasBit == 0 {
            path = upperComponents(ino: id & ~Self.upperInodeBit)
        } else {
            path = nil   // an alias of a reused inode number: only the previous server knew it
        }
        guard let path, let root = t.nodes[Self.rootID] else { return nil }
        var n = root
        for name in path {
            guard let next = try? resolve(t, n, name) else { return nil }
            n = next
        }
        if n.id != id {
            Log.debug("takeover: node \(id) is now \(n.id) (renamed or replaced since): ESTALE")
            return nil
        }
        return n
    }

    /// An open file with no name left: kept by its scratch link.
    private func recoverOrphan(_ t: NodeTable, _ id: UInt64) -> OverlayInode? {
        let name = NodeTable.orphanName(id)
        guard let st = try? Sys.statIfPresent(workFD, name), st.st_mode & S_IFMT != S_IFDIR,
              let fd = try? Sys.pathFD(workFD, name) else { return nil }
        let n = OverlayInode(id: id, isDirectory: false, lower: id & Self.upperInodeBit == 0 ? UInt32(id - 1) : nil,
                             inUpper: true, links: [])
        n.orphanFD = fd
        n.orphanName = name
        n.unlinked = true
        t.nodes[id] = n
        return n
    }

    /// The names from the lower root to `inode` (a file's first name, for hardlinks).
    private func lowerComponents(_ inode: UInt32) -> [[UInt8]]? {
        var parts: [[UInt8]] = []
        var current = inode
        if !tree.isDirectory[Int(current)] {
            guard let (directory, name) = lowerFileParent(inode) else { return nil }
            parts.append(name)
            current = directory
        }
        var steps = 0
        while current != 0 {
            let parent = tree.parent[Int(current)]
            guard let child = tree.children[Int(parent)].first(where: { $0.inode == current }), steps < 4096 else { return nil }
            parts.append(Array(child.name))
            current = parent
            steps += 1
        }
        return parts.reversed()
    }

    /// The tree records no parent for a file: find the directory that lists it.
    private func lowerFileParent(_ inode: UInt32) -> (UInt32, [UInt8])? {
        for directory in 0..<tree.inodeCount where tree.isDirectory[directory] {
            if let child = tree.children[directory].first(where: { $0.inode == inode }) {
                return (UInt32(directory), Array(child.name))
            }
        }
        return nil
    }

    /// The path of the upper object with inode `ino` (breadth first, whiteouts skipped).
    private func upperComponents(ino: UInt64) -> [[UInt8]]? {
        var queue: [(fd: Int32, path: [[UInt8]])] = []
        guard let rootFD = try? Sys.dup(upperFD) else { return nil }
        queue.append((rootFD, []))
        defer { for entry in queue { close(entry.fd) } }
        var visited = 0
        while !queue.isEmpty, visited < 1_000_000 {
            let (fd, path) = queue.removeFirst()
            defer { close(fd) }
            guard let entries = try? Sys.list(fd) else { continue }
            for entry in entries {
                visited += 1
                let name = Sys.name(entry.name)
                guard let st = try? Sys.statIfPresent(fd, name) else { continue }
                if UInt64(st.st_ino) == ino && !OverlayFormat.isWhiteout(st) { return path + [entry.name] }
                if st.st_mode & S_IFMT == S_IFDIR, let child = try? Sys.pathFD(fd, name) {
                    queue.append((child, path + [entry.name]))
                }
            }
        }
        return nil
    }

    /// The handle the previous server gave the kernel for node `inode`: a file's upper
    /// object opened again (read-write, so it serves whatever the kernel sends), or the layers.
    func recoverHandle(_ t: NodeTable, _ handle: UInt64, inode: UInt64) -> OverlayHandle? {
        guard t.recover != nil else { return nil }
        guard let n = try? t.node(inode) else {
            Log.debug("takeover: handle \(handle) of node \(inode): the node is not found")
            return nil
        }
        var fd: Int32?
        if n.inUpper && !n.isDirectory {
            fd = (try? openUpper(t, n, flags: O_RDWR)) ?? (try? openUpper(t, n, flags: O_RDONLY))
        }
        Log.debug("takeover: handle \(handle) of node \(inode) opened again (\(fd.map { "descriptor \($0)" } ?? "from the image"))")
        let h = OverlayHandle(node: inode, fd: fd, flags: n.isDirectory ? O_RDONLY : O_RDWR)
        n.opens += 1
        t.handles[handle] = h
        return h
    }
}
