#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataFS

/// The libfuse low-level operations table and the handlers behind it.
///
/// Every entry is a closure that captures nothing (libfuse takes C function pointers); it
/// finds the filesystem through the request's userdata. Every handler replies exactly once on
/// every path: a request left without a reply hangs its caller forever.
enum FuseOperations {
    static func table(for context: FuseContext) -> fuse_lowlevel_ops {
        var ops = fuse_lowlevel_ops()
        ops.`init` = { userdata, conn in FuseOperations.initialize(userdata!, conn!) }
        ops.lookup = { req, parent, name in RequestStats.timed(.lookup) { FuseOperations.lookup(req!, parent, name!) } }
        ops.forget = { req, ino, count in RequestStats.timed(.forget) { FuseOperations.forget(req!, ino, count) } }
        ops.forget_multi = { req, count, forgets in RequestStats.timed(.forget) { FuseOperations.forgetMulti(req!, count, forgets) } }
        ops.getattr = { req, ino, _ in RequestStats.timed(.getattr) { FuseOperations.getattr(req!, ino) } }
        ops.readlink = { req, ino in RequestStats.timed(.readlink) { FuseOperations.readlink(req!, ino) } }
        ops.opendir = { req, ino, fi in RequestStats.timed(.opendir) { FuseOperations.opendir(req!, ino, fi!) } }
        ops.readdir = { req, ino, size, offset, fi in
            RequestStats.timed(.readdir) { FuseOperations.readdir(req!, ino, size, offset, fi!, plus: false) }
        }
        ops.readdirplus = { req, ino, size, offset, fi in
            RequestStats.timed(.readdirplus) { FuseOperations.readdir(req!, ino, size, offset, fi!, plus: true) }
        }
        ops.releasedir = { req, ino, fi in RequestStats.timed(.releasedir) { FuseOperations.releasedir(req!, ino, fi!) } }
        ops.open = { req, ino, fi in RequestStats.timed(.open) { FuseOperations.open(req!, ino, fi!) } }
        ops.read = { req, ino, size, offset, fi in RequestStats.timed(.read) { FuseOperations.read(req!, ino, size, offset, fi!) } }
        ops.release = { req, ino, fi in RequestStats.timed(.release) { FuseOperations.release(req!, ino, fi!) } }
        ops.statfs = { req, ino in RequestStats.timed(.statfs) { FuseOperations.statfs(req!, ino) } }
        ops.getxattr = { req, ino, name, size in RequestStats.timed(.getxattr) { FuseOperations.getxattr(req!, ino, name!, size) } }
        ops.listxattr = { req, ino, size in RequestStats.timed(.listxattr) { FuseOperations.listxattr(req!, ino, size) } }
        // default_permissions makes the kernel check modes itself; access only has to agree.
        ops.access = { req, _, _ in RequestStats.timed(.access) { _ = fuse_reply_err(req, 0) } }

        // Writes: only when the filesystem takes them (FuseOperations+Write.swift).
        if context.writable != nil {
            installWriteOperations(&ops)
        }
        return ops
    }

    // MARK: - Connection

    static func initialize(_ userdata: UnsafeMutableRawPointer, _ conn: UnsafeMutablePointer<fuse_conn_info>) {
        let context = Unmanaged<FuseContext>.fromOpaque(userdata).takeUnretainedValue()
        let options = context.options
        // Must equal `-o max_read`, or the kernel rejects INIT (EPROTO).
        conn.pointee.max_read = UInt32(options.maxRead)
        // max_readahead stays at the kernel's offer: INIT can only lower it. Raising it is done
        // through sysfs after mount (FuseServer).
        let capable = conn.pointee.capable
        var want = conn.pointee.want
        let plus = UInt32(FUSE_CAP_READDIRPLUS), plusAuto = UInt32(FUSE_CAP_READDIRPLUS_AUTO)
        if options.readdirPlus && capable & plus != 0 {
            // Always plus: a rootfs is listed to be stat'ed (ls -l, find, package managers).
            want |= plus
            want &= ~plusAuto
        } else {
            want &= ~(plus | plusAuto)
        }
        // Symlink targets never change: let the kernel cache them in the page cache.
        if capable & UInt32(FUSE_CAP_CACHE_SYMLINKS) != 0 { want |= UInt32(FUSE_CAP_CACHE_SYMLINKS) }
        // Replies come from memory the core owns (mapped files, decoded spans) and go out with
        // one writev; splice would only help for replies backed by a file descriptor.
        want &= ~UInt32(FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ)
        conn.pointee.want = want
        if context.writable == nil && options.readOnly && options.keepCache {
            context.zeroMessageOpen = capable & UInt32(FUSE_CAP_NO_OPEN_SUPPORT) != 0
            context.zeroMessageOpendir = capable & UInt32(FUSE_CAP_NO_OPENDIR_SUPPORT) != 0
        }
    }

    // MARK: - Names and attributes

    static func lookup(_ req: fuse_req_t, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>) {
        let context = FuseContext.of(req)
        var entry = fuse_entry_param()
        do {
            let attributes = try context.fileSystem.lookup(
                parent: parent, name: UnsafeRawBufferPointer(start: name, count: strlen(name)))
            entry.ino = attributes.inode
            entry.attr = attributes.stat
            (entry.entry_timeout, entry.attr_timeout) = context.timeouts(attributes)
        } catch {
            guard error.code == ENOENT && context.negativeTimeout > 0 else {
                _ = fuse_reply_err(req, error.code)
                return
            }
            // Inode 0 with a timeout is a negative entry: the kernel remembers the miss, so
            // probing for absent files (PATH searches, ld.so) costs one request, not one each.
            entry.entry_timeout = context.negativeTimeout
        }
        if fuse_reply_entry(req, &entry) != 0 && entry.ino != 0 {
            // The lookup was interrupted and the kernel never saw it: undo its count.
            context.fileSystem.forget(inode: entry.ino, count: 1)
        }
    }

    static func forget(_ req: fuse_req_t, _ ino: fuse_ino_t, _ count: UInt64) {
        FuseContext.of(req).fileSystem.forget(inode: ino, count: count)
        fuse_reply_none(req)
    }

    static func forgetMulti(_ req: fuse_req_t, _ count: Int, _ forgets: UnsafeMutablePointer<fuse_forget_data>?) {
        let fileSystem = FuseContext.of(req).fileSystem
        if let forgets {
            for index in 0..<count {
                fileSystem.forget(inode: forgets[index].ino, count: forgets[index].nlookup)
            }
        }
        fuse_reply_none(req)
    }

    static func getattr(_ req: fuse_req_t, _ ino: fuse_ino_t) {
        let context = FuseContext.of(req)
        do {
            let attributes = try context.fileSystem.getattr(inode: ino)
            var st = attributes.stat
            _ = fuse_reply_attr(req, &st, context.timeouts(attributes).attr)
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func readlink(_ req: fuse_req_t, _ ino: fuse_ino_t) {
        do {
            let target = try FuseContext.of(req).fileSystem.readlink(inode: ino)
            // fuse_reply_readlink wants a C string: NUL-terminate in the thread's scratch.
            let buffer = ScratchBuffer.get(target.count + 1)
            target.withUnsafeBytes { buffer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            buffer.storeBytes(of: 0, toByteOffset: target.count, as: UInt8.self)
            _ = fuse_reply_readlink(req, buffer.assumingMemoryBound(to: CChar.self))
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    // MARK: - Directories

    static func opendir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        let context = FuseContext.of(req)
        let fileSystem = context.fileSystem
        do {
            let handle = try fileSystem.opendir(inode: ino)
            if context.zeroMessageOpendir {
                // Checked above that it is a directory; from now on the kernel opens by itself.
                fileSystem.releasedir(inode: ino, handle: handle)
                _ = fuse_reply_err(req, ENOSYS)
                return
            }
            fi.pointee.fh = handle
            // A read-only tree never changes: the kernel may keep what it has listed.
            if FuseContext.of(req).writable == nil {
                strata_fi_set_keep_cache(fi, 1)
                strata_fi_set_cache_readdir(fi, 1)
            }
            if fuse_reply_open(req, fi) != 0 {
                // Interrupted: there will be no releasedir for this handle.
                fileSystem.releasedir(inode: ino, handle: handle)
            }
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    /// Longest name copied for fuse_add_direntry (which wants a C string). The kernel takes
    /// at most 1024 bytes per name (FUSE_NAME_MAX).
    private static let nameCapacity = 1025

    static func readdir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                        _ fi: UnsafeMutablePointer<fuse_file_info>, plus: Bool) {
        let context = FuseContext.of(req)
        let scratch = ScratchBuffer.get(size + nameCapacity)
        let reply = scratch.assumingMemoryBound(to: CChar.self)
        let name = (scratch + size).assumingMemoryBound(to: CChar.self)
        var used = 0
        var nameTooLong = false
        // "." and ".." are not linked by the kernel in READDIRPLUS, so it will never forget
        // them; the lookups the core counted for them are given back after the listing.
        var dotInodes: (UInt64, UInt64) = (0, 0)
        do {
            try context.fileSystem.readdir(inode: ino, handle: fi.pointee.fh, offset: UInt64(offset), plus: plus) {
                entryName, attributes, next in
                guard entryName.count < nameCapacity else { nameTooLong = true; return false }
                if entryName.count > 0 {
                    UnsafeMutableRawPointer(name).copyMemory(from: entryName.baseAddress!, byteCount: entryName.count)
                }
                name[entryName.count] = 0
                let remaining = size - used
                let needed: Int
                if plus {
                    let isDot = entryName.count <= 2 && entryName.allSatisfy { $0 == UInt8(ascii: ".") }
                    var entry = fuse_entry_param()
                    entry.ino = isDot ? 0 : attributes.inode
                    entry.attr = attributes.stat
                    (entry.entry_timeout, entry.attr_timeout) = context.timeouts(attributes)
                    needed = fuse_add_direntry_plus(req, reply + used, remaining, name, &entry, off_t(next))
                    if needed <= remaining && isDot {
                        if entryName.count == 1 { dotInodes.0 = attributes.inode } else { dotInodes.1 = attributes.inode }
                    }
                } else {
                    var st = attributes.stat
                    needed = fuse_add_direntry(req, reply + used, remaining, name, &st, off_t(next))
                }
                // Too big: nothing was written; false tells the core to roll back its count.
                guard needed <= remaining else { return false }
                used += needed
                return true
            }
        } catch {
            if used == 0 {
                _ = fuse_reply_err(req, error.code)
                return
            }
            // Entries already accepted were counted: deliver them, the error comes next call.
        }
        if nameTooLong && used == 0 {
            _ = fuse_reply_err(req, ENAMETOOLONG)
            return
        }
        _ = fuse_reply_buf(req, reply, used)
        if dotInodes.0 != 0 { context.fileSystem.forget(inode: dotInodes.0, count: 1) }
        if dotInodes.1 != 0 { context.fileSystem.forget(inode: dotInodes.1, count: 1) }
    }

    static func releasedir(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        FuseContext.of(req).fileSystem.releasedir(inode: ino, handle: fi.pointee.fh)
        _ = fuse_reply_err(req, 0)
    }

    // MARK: - Files

    static func open(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        let context = FuseContext.of(req)
        let flags = fi.pointee.flags
        if context.writable == nil && (flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0) {
            _ = fuse_reply_err(req, EROFS)
            return
        }
        do {
            let handle: UInt64, keepCache: Bool
            if let writable = context.writable {
                // A file never copied up keeps its pages as on a read-only mount; a copy-up
                // or a write goes through the kernel, which updates them.
                (handle, keepCache) = try writable.openKeepingCache(inode: ino, flags: flags)
            } else {
                (handle, keepCache) = (try context.fileSystem.open(inode: ino, flags: flags), context.keepCache)
            }
            if context.zeroMessageOpen {
                context.fileSystem.release(inode: ino, handle: handle)
                _ = fuse_reply_err(req, ENOSYS)
                return
            }
            fi.pointee.fh = handle
            strata_fi_set_keep_cache(fi, keepCache || context.keepCache ? 1 : 0)
            // No FLUSH on close, for any open: writes go straight to the upper file (no writeback
            // cache), so no file system here buffers anything to flush. It spares a round trip, and
            // (on kernels since 5.16, which honour the flag) a close can never wait on the server:
            // a child between fork and exec closing its copy of a file on this mount (while also
            // holding a copy of /dev/fuse) cannot hang on a server that has stopped.
            strata_fi_set_noflush(fi, 1)
            if fuse_reply_open(req, fi) != 0 {
                context.fileSystem.release(inode: ino, handle: handle)
            }
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func read(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int, _ offset: off_t,
                     _ fi: UnsafeMutablePointer<fuse_file_info>) {
        var replied = false
        do {
            try FuseContext.of(req).fileSystem.read(inode: ino, handle: fi.pointee.fh,
                                                    offset: UInt64(offset), size: size) { bytes in
                guard !replied else { return }
                replied = true
                // Straight from the core's memory to the kernel (one writev, no copy here).
                _ = fuse_reply_buf(req, bytes.baseAddress?.assumingMemoryBound(to: CChar.self),
                                   min(bytes.count, size))
            }
            if !replied {  // the core forgot to reply
                Log.error("EIO: read of inode \(ino) at offset \(offset): the file system gave no data and no error")
                _ = fuse_reply_err(req, EIO)
            }
        } catch {
            if !replied { _ = fuse_reply_err(req, error.code) }
        }
    }

    static func release(_ req: fuse_req_t, _ ino: fuse_ino_t, _ fi: UnsafeMutablePointer<fuse_file_info>) {
        FuseContext.of(req).fileSystem.release(inode: ino, handle: fi.pointee.fh)
        _ = fuse_reply_err(req, 0)
    }

    static func statfs(_ req: fuse_req_t, _ ino: fuse_ino_t) {
        do {
            var sv = try FuseContext.of(req).fileSystem.statfs(inode: ino).statvfs
            _ = fuse_reply_statfs(req, &sv)
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    // MARK: - Extended attributes

    static func getxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ name: UnsafePointer<CChar>, _ size: Int) {
        do {
            let value = try FuseContext.of(req).fileSystem.getxattr(inode: ino, name: String(cString: name))
            if size == 0 {
                _ = fuse_reply_xattr(req, value.count)  // a probe for the size
            } else if value.count > size {
                _ = fuse_reply_err(req, ERANGE)
            } else {
                value.withUnsafeBytes {
                    _ = fuse_reply_buf(req, $0.baseAddress?.assumingMemoryBound(to: CChar.self), $0.count)
                }
            }
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func listxattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ size: Int) {
        do {
            let names = try FuseContext.of(req).fileSystem.listxattr(inode: ino)
            // The list is the names, each followed by a NUL.
            var total = 0
            for name in names { total += name.utf8.count + 1 }
            if size == 0 {
                _ = fuse_reply_xattr(req, total)
                return
            }
            guard total <= size else {
                _ = fuse_reply_err(req, ERANGE)
                return
            }
            let buffer = ScratchBuffer.get(total)
            var used = 0
            for name in names {
                for byte in name.utf8 {
                    buffer.storeBytes(of: byte, toByteOffset: used, as: UInt8.self)
                    used += 1
                }
                buffer.storeBytes(of: 0, toByteOffset: used, as: UInt8.self)
                used += 1
            }
            _ = fuse_reply_buf(req, buffer.assumingMemoryBound(to: CChar.self), used)
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }
}
