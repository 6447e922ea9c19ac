#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataFS

/// The handlers of a writable mount (a `WritableFileSystem`: the image under an upper layer).
/// As for reads, every handler replies exactly once.
extension FuseOperations {
    static func installWriteOperations(_ ops: inout fuse_lowlevel_ops) {
        ops.create = { req, parent, name, mode, fi in FuseOperations.create(req!, parent, name!, mode, fi!) }
        ops.mknod = { req, parent, name, mode, rdev in
            FuseOperations.reply(entry: req!) { fs, ctx throws(FSError) in
                try fs.mknod(parent: parent, name: FuseOperations.bytes(name!), mode: UInt32(mode), rdev: UInt64(rdev), context: ctx)
            }
        }
        ops.mkdir = { req, parent, name, mode in
            FuseOperations.reply(entry: req!) { fs, ctx throws(FSError) in
                try fs.mkdir(parent: parent, name: FuseOperations.bytes(name!), mode: UInt32(mode), context: ctx)
            }
        }
        ops.symlink = { req, target, parent, name in
            FuseOperations.reply(entry: req!) { fs, ctx throws(FSError) in
                try fs.symlink(parent: parent, name: FuseOperations.bytes(name!), target: FuseOperations.bytes(target!), context: ctx)
            }
        }
        ops.link = { req, ino, newParent, newName in
            FuseOperations.reply(entry: req!) { fs, _ throws(FSError) in
                try fs.link(inode: ino, newParent: newParent, newName: FuseOperations.bytes(newName!))
            }
        }
        ops.unlink = { req, parent, name in
            FuseOperations.reply(error: req!) { fs throws(FSError) in try fs.unlink(parent: parent, name: FuseOperations.bytes(name!)) }
        }
        ops.rmdir = { req, parent, name in
            FuseOperations.reply(error: req!) { fs throws(FSError) in try fs.rmdir(parent: parent, name: FuseOperations.bytes(name!)) }
        }
        ops.rename = { req, parent, name, newParent, newName, flags in
            FuseOperations.reply(error: req!) { fs throws(FSError) in
                try fs.rename(parent: parent, name: FuseOperations.bytes(name!), newParent: newParent,
                              newName: FuseOperations.bytes(newName!), flags: UInt32(flags))
            }
        }
        ops.write = { req, ino, buffer, size, offset, fi in FuseOperations.write(req!, ino, buffer, size, offset, fi!) }
        ops.setattr = { req, ino, attr, toSet, fi in FuseOperations.setattr(req!, ino, attr!, toSet, fi) }
        ops.fallocate = { req, ino, mode, offset, length, fi in
            let handle = fi!.pointee.fh
            FuseOperations.reply(error: req!) { fs throws(FSError) in
                try fs.fallocate(inode: ino, handle: handle, mode: mode, offset: UInt64(offset), length: UInt64(length))
            }
        }
        ops.setxattr = { req, ino, name, value, size, flags in
            let n = String(cString: name!)
            FuseOperations.reply(error: req!) { fs throws(FSError) in
                try fs.setxattr(inode: ino, name: n, value: UnsafeRawBufferPointer(start: value, count: size), flags: flags)
            }
        }
        ops.removexattr = { req, ino, name in
            let n = String(cString: name!)
            FuseOperations.reply(error: req!) { fs throws(FSError) in try fs.removexattr(inode: ino, name: n) }
        }
        // Only a kernel older than FOPEN_NOFLUSH (5.16) still sends FLUSH (see `open`).
        ops.flush = { req, ino, fi in
            let handle = fi!.pointee.fh
            RequestStats.timed(.flush) {
                FuseOperations.reply(error: req!) { fs throws(FSError) in try fs.flush(inode: ino, handle: handle) }
            }
        }
        ops.fsync = { req, ino, dataOnly, fi in
            let handle = fi!.pointee.fh
            FuseOperations.reply(error: req!) { fs throws(FSError) in try fs.fsync(inode: ino, handle: handle, dataOnly: dataOnly != 0) }
        }
        ops.fsyncdir = { req, ino, dataOnly, fi in
            let handle = fi!.pointee.fh
            FuseOperations.reply(error: req!) { fs throws(FSError) in try fs.fsyncdir(inode: ino, handle: handle, dataOnly: dataOnly != 0) }
        }
    }

    static func bytes(_ name: UnsafePointer<CChar>) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: name, count: strlen(name))
    }

    static func requestContext(_ req: fuse_req_t) -> RequestContext {
        let c = fuse_req_ctx(req)!.pointee
        return RequestContext(uid: c.uid, gid: c.gid, pid: c.pid, umask: UInt32(c.umask))
    }

    static func entryParameter(_ attributes: NodeAttributes, _ context: FuseContext) -> fuse_entry_param {
        var entry = fuse_entry_param()
        entry.ino = attributes.inode
        entry.attr = attributes.stat
        (entry.entry_timeout, entry.attr_timeout) = context.timeouts(attributes)
        return entry
    }

    /// Replies with the entry `body` made (it counted one lookup, given back if the reply fails).
    static func reply(entry req: fuse_req_t,
                      _ body: (any WritableFileSystem, RequestContext) throws(FSError) -> NodeAttributes) {
        let context = FuseContext.of(req)
        guard let fs = context.writable else { _ = fuse_reply_err(req, EROFS); return }
        do {
            let attributes = try body(fs, requestContext(req))
            var entry = entryParameter(attributes, context)
            if fuse_reply_entry(req, &entry) != 0 { fs.forget(inode: attributes.inode, count: 1) }
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func reply(error req: fuse_req_t, _ body: (any WritableFileSystem) throws(FSError) -> Void) {
        guard let fs = FuseContext.of(req).writable else { _ = fuse_reply_err(req, EROFS); return }
        do {
            try body(fs)
            _ = fuse_reply_err(req, 0)
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func create(_ req: fuse_req_t, _ parent: fuse_ino_t, _ name: UnsafePointer<CChar>, _ mode: mode_t,
                       _ fi: UnsafeMutablePointer<fuse_file_info>) {
        let context = FuseContext.of(req)
        guard let fs = context.writable else { _ = fuse_reply_err(req, EROFS); return }
        do {
            let made = try fs.create(parent: parent, name: bytes(name), mode: UInt32(mode), flags: fi.pointee.flags,
                                     context: requestContext(req))
            fi.pointee.fh = made.handle
            strata_fi_set_noflush(fi, 1)   // as `open`: nothing is ever buffered to flush
            var entry = entryParameter(made.attributes, context)
            if fuse_reply_create(req, &entry, fi) != 0 {
                fs.release(inode: made.attributes.inode, handle: made.handle)
                fs.forget(inode: made.attributes.inode, count: 1)
            }
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func write(_ req: fuse_req_t, _ ino: fuse_ino_t, _ buffer: UnsafePointer<CChar>?, _ size: Int, _ offset: off_t,
                      _ fi: UnsafeMutablePointer<fuse_file_info>) {
        guard let fs = FuseContext.of(req).writable else { _ = fuse_reply_err(req, EROFS); return }
        do {
            let written = try fs.write(inode: ino, handle: fi.pointee.fh, offset: UInt64(offset),
                                       data: UnsafeRawBufferPointer(start: buffer, count: size))
            _ = fuse_reply_write(req, written)
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }

    static func setattr(_ req: fuse_req_t, _ ino: fuse_ino_t, _ attr: UnsafeMutablePointer<stat>, _ toSet: Int32,
                        _ fi: UnsafeMutablePointer<fuse_file_info>?) {
        let context = FuseContext.of(req)
        guard let fs = context.writable else { _ = fuse_reply_err(req, EROFS); return }
        let a = attr.pointee
        var changes = AttributeChanges()
        if toSet & FUSE_SET_ATTR_MODE != 0 { changes.mode = UInt32(a.st_mode) }
        if toSet & FUSE_SET_ATTR_UID != 0 { changes.uid = a.st_uid }
        if toSet & FUSE_SET_ATTR_GID != 0 { changes.gid = a.st_gid }
        if toSet & FUSE_SET_ATTR_SIZE != 0 { changes.size = UInt64(a.st_size) }
        if toSet & FUSE_SET_ATTR_ATIME_NOW != 0 { changes.atime = .now } else if toSet & FUSE_SET_ATTR_ATIME != 0 {
            changes.atime = .at(Timestamp(seconds: Int64(a.st_atim.tv_sec), nanoseconds: UInt32(a.st_atim.tv_nsec)))
        }
        if toSet & FUSE_SET_ATTR_MTIME_NOW != 0 { changes.mtime = .now } else if toSet & FUSE_SET_ATTR_MTIME != 0 {
            changes.mtime = .at(Timestamp(seconds: Int64(a.st_mtim.tv_sec), nanoseconds: UInt32(a.st_mtim.tv_nsec)))
        }
        do {
            let attributes = try fs.setattr(inode: ino, handle: fi?.pointee.fh, changes: changes, context: requestContext(req))
            var st = attributes.stat
            _ = fuse_reply_attr(req, &st, context.timeouts(attributes).attr)
        } catch {
            _ = fuse_reply_err(req, error.code)
        }
    }
}
