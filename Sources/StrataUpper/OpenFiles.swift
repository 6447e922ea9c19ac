import StrataFS
#if canImport(Glibc)
import Glibc
#endif

/// Open files. Opening for writing (or with O_TRUNC) copies the file up; opening read-only
/// never does, and reads then come from the layers until some other change copies it up.
extension OverlayFileSystem {
    /// The flags to open an upper file with: the access mode (write-only widened to read-write,
    /// so the handle can serve any read the kernel sends) and the flags that change writes.
    static func upperOpenFlags(_ flags: Int32) -> Int32 {
        var f = flags & (O_APPEND | O_SYNC | O_DSYNC | Sys.noAccessTime)
        f |= (flags & O_ACCMODE == O_RDONLY) ? O_RDONLY : O_RDWR
        return f
    }

    func openUpper(_ t: NodeTable, _ n: OverlayInode, flags: Int32) throws(FSError) -> Int32 {
        switch try upperObject(t, n) {
        case .entry(let dir, let name): return try Sys.openat(dir, name, flags)
        // Only an orphan whose scratch link could not be made is reached by descriptor: no
        // call reopens an O_PATH descriptor but open(2) of its /proc/self/fd link.
        case .descriptor(let fd): return try Sys.open(Sys.procPath(fd), flags)
        }
    }

    public func open(inode: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        try openKeepingCache(inode: inode, flags: flags).handle
    }

    /// A file never copied up keeps its pages in the kernel between opens, as on a read-only
    /// mount: only this mount's requests change it, and a change copies it up first (its later
    /// opens then drop the pages, and a write updates them anyway).
    public func openKeepingCache(inode: UInt64, flags: Int32) throws(FSError) -> (handle: UInt64, keepCache: Bool) {
        try locked { t throws(FSError) -> (handle: UInt64, keepCache: Bool) in
            let n = try t.node(inode)
            if n.isDirectory { throw FSError(EISDIR) }
            let truncate = flags & O_TRUNC != 0
            if flags & O_ACCMODE != O_RDONLY || truncate {
                try copyUp(t, n, dataLimit: truncate ? 0 : nil)
            }
            var fd: Int32?
            if n.inUpper {
                fd = try openUpper(t, n, flags: Self.upperOpenFlags(flags) | (truncate ? O_TRUNC : 0))
            }
            n.opens += 1
            let handle = t.addHandle(OverlayHandle(node: inode, fd: fd, flags: flags))
            if fd == nil && n.lower != nil { lowerHandles.withLock { $0[handle] = n } }
            return (handle, !n.inUpper)
        }
    }

    /// The handle's upper descriptor; a read-only handle of a file copied up since it was opened
    /// switches to the copy, so it sees the writes made through other handles.
    func descriptor(_ handle: UInt64, inode: UInt64) throws(FSError) -> (fd: Int32?, lowerInode: UInt64) {
        try locked { t throws(FSError) -> (fd: Int32?, lowerInode: UInt64) in
            guard let h = t.handles[handle] ?? recoverHandle(t, handle, inode: inode), let n = t.nodes[h.node] else {
                throw FSError(EBADF)
            }
            if h.fd == nil && n.inUpper { h.fd = try? openUpper(t, n, flags: O_RDONLY) }
            return (h.fd, n.lower.map { UInt64($0) + 1 } ?? 0)
        }
    }

    public func read(inode: UInt64, handle: UInt64, offset: UInt64, size: Int,
                     reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        // A file never copied up: straight to the layers. A copy-up racing with this read
        // finishes before any write to the copy is answered, so a read that sees no upper
        // object yet overlaps that write and may return the bytes from before it.
        if let l = lowerHandles.withLock({ $0[handle].flatMap { $0.hasUpper.load(ordering: .acquiring) ? nil : $0.lower } }) {
            try lower.read(inode: UInt64(l) + 1, handle: 0, offset: offset, size: size, reply: reply)
            return
        }
        let (fd, lowerInode) = try descriptor(handle, inode: inode)
        guard let fd else {
            try lower.read(inode: lowerInode, handle: 0, offset: offset, size: size, reply: reply)
            return
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(size, 1), alignment: 16)
        defer { buffer.deallocate() }
        let done = try Sys.read(fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<size]), at: offset)
        reply(UnsafeRawBufferPointer(rebasing: buffer[0..<done]))
    }

    public func write(inode: UInt64, handle: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        guard let fd = try descriptor(handle, inode: inode).fd else { throw FSError(EBADF) }
        var done = 0
        while done < data.count {
            do throws(FSError) {
                done += try Sys.write(fd, UnsafeRawBufferPointer(rebasing: data[done...]), at: offset + UInt64(done))
            } catch {
                if done > 0 { break }
                throw error
            }
        }
        return done
    }

    public func release(inode: UInt64, handle: UInt64) {
        locked { t in
            guard let h = t.handles.removeValue(forKey: handle) else { return }
            if h.fd == nil { lowerHandles.withLock { _ = $0.removeValue(forKey: handle) } }
            if let fd = h.fd { close(fd) }
            guard let n = t.nodes[h.node] else { return }
            n.opens -= 1
            dropIfUnused(t, n)   // an orphan stays reachable while the kernel still knows the node
        }
    }

    public func flush(inode: UInt64, handle: UInt64) throws(FSError) {
        // Writes go straight to the upper file: nothing is buffered here.
    }

    public func fsync(inode: UInt64, handle: UInt64, dataOnly: Bool) throws(FSError) {
        guard let fd = try descriptor(handle, inode: inode).fd else { return }
        try Sys.fsync(fd, dataOnly: dataOnly)
    }

    public func fallocate(inode: UInt64, handle: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError) {
        guard let fd = try descriptor(handle, inode: inode).fd else { throw FSError(EBADF) }
        try Sys.fallocate(fd, mode, offset, length)
    }
}
