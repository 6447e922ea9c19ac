import StrataFS
#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Creating and removing names. A new entry is made in the work directory with its final owner
/// and mode (and opaque mark), then renamed into place: nobody sees it half made, and a
/// whiteout at that name is replaced in the same step.
extension OverlayFileSystem {
    /// Owner of a new entry: the caller, or the parent's group when the parent is setgid.
    struct NewOwner { var uid: UInt32; var gid: UInt32; var setgidDirectory: Bool }

    func owner(for parentFD: Int32, context: RequestContext) throws(FSError) -> NewOwner {
        let st = try Sys.fstat(parentFD)
        if st.st_mode & S_ISGID != 0 { return NewOwner(uid: context.uid, gid: st.st_gid, setgidDirectory: true) }
        return NewOwner(uid: context.uid, gid: context.gid, setgidDirectory: false)
    }

    /// Checks that `name` is free in `parent`, copies `parent` up, runs `make` to build the entry
    /// at a work name, and renames it into place. Returns the new node (one lookup counted).
    func install(_ t: NodeTable, _ parentID: UInt64, _ nameBuffer: UnsafeRawBufferPointer, directory: Bool,
                 make: (_ temp: [CChar], _ parentFD: Int32) throws(FSError) -> Void) throws(FSError) -> OverlayInode {
        let parent = try t.directory(parentID)
        let name = Array(nameBuffer)
        try Self.checkName(name)
        if (try? resolve(t, parent, name)) != nil { throw FSError(EEXIST) }
        let pfd = try copyUpDirectory(t, parent)
        let cname = Sys.name(name)
        let temp = t.tempName()
        do throws(FSError) {
            try make(temp, pfd)
            let existing = try Sys.statIfPresent(pfd, cname)
            if let existing, OverlayFormat.isWhiteout(existing) {
                if directory {
                    // A directory cannot replace a device by rename: swap them, drop the whiteout.
                    try Sys.renameat(workFD, temp, pfd, cname, flags: Sys.renameExchange)
                    try Sys.unlinkat(workFD, temp)
                } else {
                    try Sys.renameat(workFD, temp, pfd, cname)
                }
            } else {
                try Sys.renameat(workFD, temp, pfd, cname, flags: Sys.renameNoReplace)
            }
        } catch {
            Sys.removeTree(workFD, temp)
            throw error
        }
        if let st = try? Sys.stat(pfd, cname) { t.madeInUpper.insert(UInt64(st.st_ino)) }
        let n = try resolve(t, parent, name)
        n.lookups += 1
        return n
    }

    func applyOwner(_ temp: [CChar], _ owner: NewOwner, mode: UInt32?) throws(FSError) {
        try Sys.fchownat(workFD, temp, owner.uid, owner.gid)
        if let mode { try Sys.chmodat(workFD, temp, mode_t(mode)) }
    }

    public func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32,
                       context: RequestContext) throws(FSError) -> (attributes: NodeAttributes, handle: UInt64) {
        // The name exists and O_EXCL was not asked: open(2)'s O_CREAT opens it. The kernel sends
        // CREATE only after a negative lookup, so this is a CREATE sent again to the server that
        // took a mount over, after the one that died had made the file (FUSE_NOTIFY_RESEND).
        if flags & O_EXCL == 0, let existing = try? lookup(parent: parent, name: name) {
            do throws(FSError) {
                let handle = try open(inode: existing.inode, flags: flags & ~O_CREAT)
                do throws(FSError) { return (try getattr(inode: existing.inode), handle) } catch {
                    release(inode: existing.inode, handle: handle)
                    throw error
                }
            } catch {
                forget(inode: existing.inode, count: 1)
                throw error
            }
        }
        return try locked { t throws(FSError) -> (attributes: NodeAttributes, handle: UInt64) in
            var fd: Int32 = -1
            let n = try install(t, parent, name, directory: false) { (temp, pfd) throws(FSError) in
                let owner = try self.owner(for: pfd, context: context)
                fd = try Sys.openat(workFD, temp, Self.upperOpenFlags(flags) | O_CREAT | O_EXCL, 0o600)
                try applyOwner(temp, owner, mode: mode & 0o7777 & ~context.umask)
            }
            n.opens += 1
            let h = t.addHandle(OverlayHandle(node: n.id, fd: fd, flags: flags))
            return (try attributes(t, n), h)
        }
    }

    public func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64,
                      context: RequestContext) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in
            let n = try install(t, parent, name, directory: false) { (temp, pfd) throws(FSError) in
                let owner = try self.owner(for: pfd, context: context)
                try Sys.mknodat(workFD, temp, mode_t(mode & UInt32(S_IFMT)) | 0o600, dev_t(rdev))
                try applyOwner(temp, owner, mode: mode & 0o7777 & ~context.umask)
            }
            return try attributes(t, n)
        }
    }

    public func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32,
                      context: RequestContext) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in
            let n = try install(t, parent, name, directory: true) { (temp, pfd) throws(FSError) in
                let owner = try self.owner(for: pfd, context: context)
                try Sys.mkdirat(workFD, temp, 0o700)
                var m = mode & 0o7777 & ~context.umask
                if owner.setgidDirectory { m |= UInt32(S_ISGID) }
                try applyOwner(temp, owner, mode: m)
                // Whatever the lower layers hold under this name was deleted: hide it for good.
                let p = try t.directory(parent)
                if lowerChild(p, Array(name)) != nil {
                    let fd = try Sys.pathFD(workFD, temp)
                    defer { close(fd) }
                    try Overlay.setOpaque(fd)
                }
            }
            return try attributes(t, n)
        }
    }

    public func symlink(parent: UInt64, name: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                        context: RequestContext) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in
            let n = try install(t, parent, name, directory: false) { (temp, pfd) throws(FSError) in
                let owner = try self.owner(for: pfd, context: context)
                try Sys.symlinkat(Sys.name(target), workFD, temp)
                try applyOwner(temp, owner, mode: nil)
            }
            return try attributes(t, n)
        }
    }

    public func link(inode: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in
            let source = try t.node(inode)
            if source.isDirectory { throw FSError(EPERM) }
            try copyUp(t, source)
            let object = try upperObject(t, source)
            if source.orphanName != nil { throw FSError(ENOENT) }   // an unlinked open file cannot get a name back
            let n = try install(t, newParent, newName, directory: false) { (temp, _) throws(FSError) in
                switch object {
                case .entry(let dir, let name): try Sys.linkat(dir, name, workFD, temp)
                case .descriptor: throw FSError(ENOENT)   // an unlinked open file cannot get a name back
                }
            }
            n.addLink(Link(parent: newParent, name: Array(newName)))
            return try attributes(t, n)
        }
    }

    public func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try locked { t throws(FSError) in
            let p = try t.directory(parent)
            let nameBytes = Array(name)
            var target = try resolve(t, p, nameBytes)
            // A lower file with other names: copy it up first, so those names keep it and the
            // upper's link count stays right. The copy releases the lock: look the name up again.
            while !target.isDirectory, !target.inUpper, let l = target.lower, tree.nlink[Int(l)] > 1 {
                try copyUp(t, target)
                target = try resolve(t, p, nameBytes)
            }
            if target.isDirectory { throw FSError(EISDIR) }
            let pfd = try copyUpDirectory(t, p)
            let cname = Sys.name(nameBytes)
            let hidesLower = lowerChild(p, nameBytes) != nil
            var lastName = true
            var upperIno: UInt64?
            if target.inUpper {
                let st = try Sys.stat(pfd, cname)
                upperIno = UInt64(st.st_ino)
                lastName = st.st_nlink <= 1
                if (target.opens > 0 || target.lookups > 0) && lastName && target.orphanFD == nil {
                    // Still open, or known to the kernel (fstat of an O_PATH descriptor, a
                    // cwd): keep it reachable until released and forgotten, as ext4 does.
                    try keepOrphan(t, target, pfd, cname)
                }
                if hidesLower {
                    let temp = t.tempName()
                    try Overlay.makeWhiteout(workFD, temp)
                    do throws(FSError) { try Sys.renameat(workFD, temp, pfd, cname) } catch { try? Sys.unlinkat(workFD, temp); throw error }
                } else {
                    try Sys.unlinkat(pfd, cname)
                }
            } else {
                try Overlay.makeWhiteout(pfd, cname)
            }
            target.removeLink(Link(parent: parent, name: nameBytes))
            if lastName { t.markUnlinked(target, upperIno: upperIno) }
        }
    }

    public func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        try locked { t throws(FSError) in
            let p = try t.directory(parent)
            let nameBytes = Array(name)
            let target = try resolve(t, p, nameBytes)
            if !target.isDirectory { throw FSError(ENOTDIR) }
            let empty = try isEmptyInView(target)
            if !empty { throw FSError(ENOTEMPTY) }
            let pfd = try copyUpDirectory(t, p)
            let cname = Sys.name(nameBytes)
            let hidesLower = lowerChild(p, nameBytes) != nil
            let upperIno = target.inUpper ? (try? Sys.stat(pfd, cname)).map { UInt64($0.st_ino) } : nil
            if target.inUpper {
                // Move the directory (and the whiteouts in it) out in one step, then delete it.
                let temp = t.tempName()
                if hidesLower {
                    try Overlay.makeWhiteout(workFD, temp)
                    do throws(FSError) { try Sys.renameat(workFD, temp, pfd, cname, flags: Sys.renameExchange) } catch {
                        try? Sys.unlinkat(workFD, temp); throw error
                    }
                } else {
                    try Sys.renameat(pfd, cname, workFD, temp)
                }
                Sys.removeTree(workFD, temp)
            } else {
                try Overlay.makeWhiteout(pfd, cname)
            }
            target.removeLink(Link(parent: parent, name: nameBytes))
            t.markUnlinked(target, upperIno: upperIno)
        }
    }
}
