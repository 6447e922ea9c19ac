import StrataFS
#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Reading a merged directory: the upper entries (minus whiteouts), then the lower entries the
/// upper neither replaces nor whites out (none when the directory is opaque or upper-only).
extension OverlayFileSystem {
    /// The names the view shows in `dir`, upper first. Caller holds the lock.
    func viewNames(_ dir: OverlayInode) throws(FSError) -> [[UInt8]] {
        var names: [[UInt8]] = []
        var hidden = Set<[UInt8]>()
        if dir.inUpper, let fd = dir.directoryFD {
            for entry in try Sys.list(fd) {
                hidden.insert(entry.name)
                if entry.type == UInt8(DT_CHR) || entry.type == UInt8(DT_UNKNOWN),
                   let st = try? Sys.stat(fd, Sys.name(entry.name)), OverlayFormat.isWhiteout(st) { continue }
                names.append(entry.name)
            }
        }
        if let l = dir.lower {
            for child in tree.children[Int(l)] {
                let name = Array(child.name)
                if !hidden.contains(name) { names.append(name) }
            }
        }
        return names
    }

    func isEmptyInView(_ dir: OverlayInode) throws(FSError) -> Bool {
        try viewNames(dir).isEmpty
    }

    /// Removes the whiteouts of an upper directory that is empty in the view, so that the upper
    /// file system will let it be replaced or removed.
    func clearWhiteouts(_ dir: OverlayInode) throws(FSError) {
        guard dir.inUpper, let fd = dir.directoryFD else { return }
        for entry in try Sys.list(fd) {
            let name = Sys.name(entry.name)
            if let st = try? Sys.stat(fd, name), OverlayFormat.isWhiteout(st) { try Sys.unlinkat(fd, name) }
        }
    }

    public func opendir(inode: UInt64) throws(FSError) -> UInt64 {
        try locked { t throws(FSError) -> UInt64 in
            let n = try t.directory(inode)
            n.opens += 1
            return t.addHandle(OverlayHandle(node: inode, fd: nil, flags: O_RDONLY))
        }
    }

    public func readdir(inode: UInt64, handle: UInt64, offset: UInt64, plus: Bool,
                        add: (UnsafeRawBufferPointer, NodeAttributes, UInt64) -> Bool) throws(FSError) {
        try locked { t throws(FSError) in
            let dir = try t.directory(inode)
            guard let h = t.handles[handle] ?? recoverHandle(t, handle, inode: inode) else { throw FSError(EBADF) }
            // (A handle taken over from the previous server has no listing: take it again.)
            if offset == 0 || h.entries.isEmpty {
                // A listing taken at the start and kept, so offsets stay meaningful across calls.
                let parentID = dir.links.first?.parent ?? dir.id
                var entries: [(name: [UInt8], id: UInt64, mode: UInt32)] = [([46], dir.id, UInt32(S_IFDIR)), ([46, 46], parentID, UInt32(S_IFDIR))]
                for name in try viewNames(dir) { entries.append((name, 0, 0)) }
                h.entries = entries
            }
            var position = Int(offset)
            while position < h.entries.count {
                let entry = h.entries[position]
                var attributes: NodeAttributes
                var child: OverlayInode?
                if position < 2 {
                    // "." and ".." count as lookups too (the contract): the adapter forgets them.
                    guard let n = t.nodes[entry.id] else { position += 1; continue }
                    attributes = try self.attributes(t, n)
                    child = n
                } else {
                    // resolve registers a node it did not know: the count tells (a set of every
                    // known node per entry made a listing quadratic in the nodes known).
                    let known = t.nodes.count
                    guard let n = try? resolve(t, dir, entry.name), let a = try? self.attributes(t, n) else {
                        position += 1; continue   // removed since the listing was taken
                    }
                    attributes = a
                    child = n
                    if !plus && t.nodes.count > known { dropIfUnused(t, n) }
                }
                let accepted = entry.name.withUnsafeBytes { add($0, attributes, UInt64(position + 1)) }
                if !accepted {
                    if let child { dropIfUnused(t, child) }
                    return
                }
                if plus, let child { child.lookups += 1 }
                position += 1
            }
        }
    }

    public func releasedir(inode: UInt64, handle: UInt64) {
        locked { t in
            guard t.handles.removeValue(forKey: handle) != nil else { return }   // one the previous server gave
            if let n = t.nodes[inode] { n.opens -= 1; dropIfUnused(t, n) }
        }
    }

    public func fsyncdir(inode: UInt64, handle: UInt64, dataOnly: Bool) throws(FSError) {
        let fd = try locked { t throws(FSError) -> Int32? in
            let n = try t.directory(inode)
            return n.inUpper ? try n.directoryFD.map { (fd: Int32) throws(FSError) in try Sys.dup(fd) } : nil
        }
        guard let fd else { return }
        defer { close(fd) }
        try Sys.fsyncDirectory(fd, dataOnly: dataOnly)
    }
}
