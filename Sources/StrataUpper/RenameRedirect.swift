import StrataFS
#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// rename, as overlayfs does it: both ends are brought into the upper directory and renamed
/// there. A directory from the lower layers keeps merging its lower directory from its new
/// place through `trusted.overlay.redirect` (so no EXDEV, and the rename survives a remount);
/// the old name gets a whiteout when the lower layers still hold it.
extension OverlayFileSystem {
    public func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64,
                       newName: UnsafeRawBufferPointer, flags: UInt32) throws(FSError) {
        try locked { t throws(FSError) in
            // A file copy-up releases the lock while it copies the data: do it first, then
            // start over, since anything looked up before may have changed meanwhile.
            while true {
                let exchange = flags & Sys.renameExchange != 0
                let noReplace = flags & Sys.renameNoReplace != 0
                if flags & ~(Sys.renameExchange | Sys.renameNoReplace) != 0 || (exchange && noReplace) { throw FSError(EINVAL) }
                let p = try t.directory(parent), np = try t.directory(newParent)
                let from = Array(name), to = Array(newName)
                try Self.checkName(to)
                let source = try resolve(t, p, from)
                var target: OverlayInode?
                do throws(FSError) { target = try resolve(t, np, to) } catch where error.code == ENOENT { target = nil }
                if noReplace && target != nil { throw FSError(EEXIST) }
                if exchange && target == nil { throw FSError(ENOENT) }
                if let target, target === source {
                    if exchange || (parent == newParent && from == to) { return }
                    if !source.isDirectory { return }   // two names of one file: POSIX says do nothing
                }
                if !exchange, let target {
                    if source.isDirectory && !target.isDirectory { throw FSError(ENOTDIR) }
                    if !source.isDirectory && target.isDirectory { throw FSError(EISDIR) }
                    if target.isDirectory {
                        let empty = try isEmptyInView(target)
                        if !empty { throw FSError(ENOTEMPTY) }
                    }
                }
                if copyUpReleasesLock(source) { try copyUp(t, source); continue }
                if exchange, let target, copyUpReleasesLock(target) { try copyUp(t, target); continue }
                let spfd = try copyUpDirectory(t, p)
                try copyUp(t, source)
                let npfd = try copyUpDirectory(t, np)
                let cfrom = Sys.name(from), cto = Sys.name(to)

                if exchange, let target {
                    try copyUp(t, target)
                    try Sys.renameat(spfd, cfrom, npfd, cto, flags: Sys.renameExchange)
                    source.removeLink(Link(parent: parent, name: from))
                    target.removeLink(Link(parent: newParent, name: to))
                    source.addLink(Link(parent: newParent, name: to))
                    target.addLink(Link(parent: parent, name: from))
                    try markMovedDirectory(source, in: np, name: to)
                    try markMovedDirectory(target, in: p, name: from)
                    return
                }

                if let target {
                    if target.isDirectory {
                        try clearWhiteouts(target)   // empty in the view; let the upper replace it
                    } else if target.inUpper, target.opens > 0 || target.lookups > 0, target.orphanFD == nil,
                              let st = try? Sys.stat(npfd, cto), st.st_nlink <= 1 {
                        try? keepOrphan(t, target, npfd, cto)
                    }
                } else if source.isDirectory, let st = try Sys.statIfPresent(npfd, cto), OverlayFormat.isWhiteout(st) {
                    try Sys.unlinkat(npfd, cto)   // a directory cannot replace a device
                }
                let targetIno = target?.inUpper == true ? (try? Sys.stat(npfd, cto)).map { UInt64($0.st_ino) } : nil
                let hidesLower = lowerChild(p, from) != nil
                if hidesLower {
                    do throws(FSError) {
                        try Sys.renameat(spfd, cfrom, npfd, cto, flags: Sys.renameWhiteout)
                    } catch where error.code == EINVAL {
                        // A file system without RENAME_WHITEOUT: rename, then whiteout.
                        try Sys.renameat(spfd, cfrom, npfd, cto)
                        try Overlay.makeWhiteout(spfd, cfrom)
                    }
                } else {
                    try Sys.renameat(spfd, cfrom, npfd, cto)
                }
                if let target {
                    target.removeLink(Link(parent: newParent, name: to))
                    if target.links.isEmpty { t.markUnlinked(target, upperIno: targetIno) }
                }
                source.removeLink(Link(parent: parent, name: from))
                source.addLink(Link(parent: newParent, name: to))
                try markMovedDirectory(source, in: np, name: to)
                return
            }
        }
    }

    /// After a directory moved to `name` in `parent`: a merged one records where its lower
    /// directory is (unless the lower layers put it there anyway); an upper-only one is made
    /// opaque when the lower layers hold something under its new name.
    func markMovedDirectory(_ dir: OverlayInode, in parent: OverlayInode, name: [UInt8]) throws(FSError) {
        guard dir.isDirectory, let fd = dir.directoryFD else { return }
        let atNewPlace = lowerChild(parent, name)
        if let l = dir.lower {
            if atNewPlace == l && !Overlay.isOpaque(fd) {
                Overlay.removeRedirect(fd)
            } else {
                try Overlay.setRedirect(fd, lowerPath(l))
            }
        } else if atNewPlace != nil && !Overlay.isOpaque(fd) {
            try Overlay.setOpaque(fd)
        }
    }
}
