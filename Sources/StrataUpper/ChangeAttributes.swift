import StrataFS
#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// setattr and xattr changes: each copies the entry up first, then changes the copy.
extension OverlayFileSystem {
    public func setattr(inode: UInt64, handle: UInt64?, changes: AttributeChanges,
                        context: RequestContext) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in
            let n = try t.node(inode)
            let onlyTruncates = changes.mode == nil && changes.uid == nil && changes.gid == nil
                && changes.atime == nil && changes.mtime == nil
            try copyUp(t, n, dataLimit: onlyTruncates ? changes.size : nil)
            let object = try upperObject(t, n)
            let nothing = onlyTruncates && changes.size == nil
            if nothing {
                // chown(f, -1, -1) reaches us as a setattr that changes nothing, but it changes
                // the ctime (the kernel sends no ctime of its own without writeback caching).
                let st = try upperStat(t, n)
                if st.st_mode & S_IFMT == S_IFLNK {
                    switch object {
                    case .entry(let dir, let name): try Sys.fchownat(dir, name, UInt32.max, UInt32.max)
                    case .descriptor(let fd): try Sys.chown(fd, UInt32.max, UInt32.max)
                    }
                } else {
                    // chmod to the same mode: root's chmod keeps every bit, unlike a chown.
                    let mode = mode_t(st.st_mode & 0o7777)
                    switch object {
                    case .entry(let dir, let name): try Sys.chmodat(dir, name, mode)
                    case .descriptor(let fd): try Sys.chmod(fd, mode)
                    }
                }
            }
            if changes.uid != nil || changes.gid != nil {
                let uid = changes.uid ?? UInt32.max, gid = changes.gid ?? UInt32.max   // -1: unchanged
                switch object {
                case .entry(let dir, let name): try Sys.fchownat(dir, name, uid, gid)
                case .descriptor(let fd): try Sys.chown(fd, uid, gid)
                }
            }
            if let mode = changes.mode {
                switch object {
                case .entry(let dir, let name): try Sys.chmodat(dir, name, mode_t(mode & 0o7777))
                case .descriptor(let fd): try Sys.chmod(fd, mode_t(mode & 0o7777))
                }
            }
            if let size = changes.size {
                if n.isDirectory { throw FSError(EISDIR) }
                if let handle, let h = t.handles[handle], let fd = h.fd {
                    try Sys.truncate(fd, size)
                } else {
                    let fd = try openUpper(t, n, flags: O_WRONLY)
                    defer { close(fd) }
                    try Sys.truncate(fd, size)
                }
            }
            if changes.atime != nil || changes.mtime != nil {
                func spec(_ t: AttributeChanges.Time?) -> timespec {
                    switch t {
                    case nil: return Glibc.timespec(tv_sec: 0, tv_nsec: (1 << 30) - 2)
                    case .now: return Glibc.timespec(tv_sec: 0, tv_nsec: (1 << 30) - 1)
                    case .at(let ts): return Self.unixTime(ts)
                    }
                }
                let times = [spec(changes.atime), spec(changes.mtime)]
                switch object {
                case .entry(let dir, let name): try Sys.utimensat(dir, name, times)
                case .descriptor(let fd): try Sys.utimens(fd, times)
                }
            }
            return try attributes(t, n)
        }
    }

    public func setxattr(inode: UInt64, name: String, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError) {
        if OverlayFormat.isPrivate(name) { throw FSError(EPERM) }
        try locked { t throws(FSError) in
            let n = try t.node(inode)
            try copyUp(t, n)
            try Sys.setxattr(try upperObject(t, n), name, value, flags)
        }
    }

    public func removexattr(inode: UInt64, name: String) throws(FSError) {
        if OverlayFormat.isPrivate(name) { throw FSError(ENODATA) }
        try locked { t throws(FSError) in
            let n = try t.node(inode)
            if !n.inUpper {
                // Nothing to remove: no reason to copy up.
                _ = try lower.getxattr(inode: UInt64(n.lower!) + 1, name: name)
                try copyUp(t, n)
            }
            try Sys.removexattr(try upperObject(t, n), name)
        }
    }
}
