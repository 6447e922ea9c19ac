#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataFS

/// Answers READDIRPLUS straight from the request buffer, without libfuse's per-request
/// machinery (a calloc'd request with a mutex, dispatch, a writev of two pieces) and
/// without copying each name into a C string for fuse_add_direntry_plus. A tree walk is
/// two READDIRPLUS per directory and little else, so this is most of its requests.
/// Same reply as FuseOperations.readdir(plus: true), byte for byte.
enum ReaddirPlusReply {
    private static let inHeaderSize = MemoryLayout<fuse_in_header>.size
    private static let outHeaderSize = MemoryLayout<fuse_out_header>.size
    /// Where a direntplus's name starts (FUSE_NAME_OFFSET_DIRENTPLUS, a macro Swift cannot
    /// import): the entry, then the dirent up to its flexible name array.
    private static let nameOffset = MemoryLayout<fuse_entry_out>.size + MemoryLayout<fuse_dirent>.size
    /// The kernel takes at most 1024 bytes per name (FUSE_NAME_MAX).
    private static let nameMax = 1024
    /// S_IFMT as a constant: Glibc's is a computed property, a call per entry.
    private static let typeMask: UInt32 = 0o170000

    /// Answers the request in `request` if it is a READDIRPLUS; false leaves it to libfuse.
    static func answer(_ request: UnsafeRawPointer, length: Int, fd: Int32, context: FuseContext) -> Bool {
        guard length >= inHeaderSize + MemoryLayout<fuse_read_in>.size else { return false }
        let header = request.load(as: fuse_in_header.self)
        guard header.opcode == FUSE_READDIRPLUS.rawValue else { return false }
        let arguments = request.load(fromByteOffset: inHeaderSize, as: fuse_read_in.self)
        RequestStats.timed(.readdirplus) { reply(header, arguments, fd: fd, context: context) }
        return true
    }

    private static func reply(_ header: fuse_in_header, _ arguments: fuse_read_in, fd: Int32, context: FuseContext) {
        let size = Int(arguments.size)
        let buffer = ScratchBuffer.get(outHeaderSize + size)
        let entries = buffer + outHeaderSize
        var used = 0
        var nameTooLong = false
        var failure: Int32 = 0
        // "." and ".." go out with node id 0, so the kernel never links nor forgets them; the
        // lookups the core counted for them are given back after the reply.
        var dotInodes: (UInt64, UInt64) = (0, 0)
        var template = fuse_direntplus()
        template.entry_out.entry_valid = context.entryValid.seconds
        template.entry_out.entry_valid_nsec = context.entryValid.nanoseconds
        template.entry_out.attr_valid = context.attrValid.seconds
        template.entry_out.attr_valid_nsec = context.attrValid.nanoseconds
        do {
            try context.fileSystem.readdir(inode: header.nodeid, handle: arguments.fh, offset: arguments.offset,
                                           plus: true) { name, attributes, next in
                guard name.count <= nameMax else { nameTooLong = true; return false }
                let length = nameOffset + name.count
                let padded = (length + 7) & ~7
                // Too big: nothing written; false tells the core to roll back its count.
                guard padded <= size - used else { return false }
                let isDot = name.count <= 2 && name.allSatisfy { $0 == UInt8(ascii: ".") }
                var entry = template
                entry.entry_out.nodeid = isDot ? 0 : attributes.inode
                entry.entry_out.attr = attributes.fuseAttr
                entry.dirent.ino = attributes.inode
                entry.dirent.off = next
                entry.dirent.namelen = UInt32(name.count)
                entry.dirent.type = (attributes.mode & typeMask) >> 12
                let target = entries + used
                target.storeBytes(of: entry, as: fuse_direntplus.self)
                if name.count > 0 { (target + nameOffset).copyMemory(from: name.baseAddress!, byteCount: name.count) }
                if padded > length { (target + length).initializeMemory(as: UInt8.self, repeating: 0, count: padded - length) }
                used += padded
                if isDot {
                    if name.count == 1 { dotInodes.0 = attributes.inode } else { dotInodes.1 = attributes.inode }
                }
                return true
            }
        } catch {
            // Entries already accepted were counted: deliver them, the error comes next call.
            failure = error.code
        }
        if used == 0 && (failure != 0 || nameTooLong) {
            send(buffer, header.unique, error: failure != 0 ? failure : ENAMETOOLONG, payload: 0, fd: fd)
            return
        }
        send(buffer, header.unique, error: 0, payload: used, fd: fd)
        if dotInodes.0 != 0 { context.fileSystem.forget(inode: dotInodes.0, count: 1) }
        if dotInodes.1 != 0 { context.fileSystem.forget(inode: dotInodes.1, count: 1) }
    }

    /// One write of header and payload. A failed write means the request was interrupted
    /// or the connection ended: libfuse ignores it as well.
    private static func send(_ buffer: UnsafeMutableRawPointer, _ unique: UInt64, error: Int32, payload: Int, fd: Int32) {
        let total = outHeaderSize + payload
        buffer.storeBytes(of: fuse_out_header(len: UInt32(total), error: -error, unique: unique),
                          as: fuse_out_header.self)
        _ = write(fd, buffer, total)
    }
}
