import StrataFS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A name of a node in the merged view.
struct Link: Equatable {
    var parent: UInt64
    var name: [UInt8]
}

/// One inode of the merged view. Guarded by the file system's table lock.
///
/// Numbers: a node that comes from the lower layers keeps the lower FUSE inode number (tree inode
/// + 1), also after copy-up, so `st_ino` does not change under a process; a node that exists only
/// in the upper directory is numbered `upperInodeBit | st_ino` of its upper object, which is
/// stable without a table (readdir needs no node to number an entry).
final class OverlayInode {
    let id: UInt64
    var isDirectory: Bool
    /// The lower tree inode: for a file, its data and metadata until copy-up; for a directory, the
    /// lower directory merged into it (nil for an opaque or upper-only directory).
    var lower: UInt32?
    /// True once the node has an object in the upper directory (never false again).
    var inUpper: Bool {
        didSet { if inUpper { hasUpper.store(true, ordering: .releasing) } }
    }
    /// `inUpper`, readable without the table lock: the read path of a file opened read-only
    /// before any copy-up reads the layers without the lock while this is false.
    let hasUpper: Atomic<Bool>
    /// A directory's upper object, held open (Sys.oPath): operations below it are relative to it,
    /// and it follows the directory through renames.
    var directoryFD: Int32?
    /// Names in the view (one for a directory; several for hardlinks). Empty once unlinked.
    var links: [Link]
    var lookups: UInt64 = 0
    var opens: Int = 0
    /// The upper object of a file whose last name was removed while it was open (Sys.oPath).
    var orphanFD: Int32?
    /// The orphan's hard link in the work directory's scratch (`OverlayFileSystem.keepOrphan`):
    /// reopening it and its xattrs then need no /proc/self/fd. Removed when the node goes.
    var orphanName: [CChar]?
    /// Removed from the view while still known to the kernel or open: reports nlink 0.
    var unlinked = false
    /// When a lower-only file was removed from the view (its ctime from then on).
    var unlinkedCtime: Timestamp?
    /// A copy-up of this file is streaming its data without the table lock. Another request
    /// that needs this node copied up waits for it (`OverlayFileSystem.copyUp`); so do those
    /// that would change its names.
    var copyingUp = false

    init(id: UInt64, isDirectory: Bool, lower: UInt32?, inUpper: Bool, links: [Link]) {
        self.id = id
        self.isDirectory = isDirectory
        self.lower = lower
        self.hasUpper = Atomic(inUpper)
        self.inUpper = inUpper
        self.links = links
    }

    func addLink(_ link: Link) {
        if isDirectory { links = [link]; return }
        if !links.contains(link) { links.append(link) }
    }

    func removeLink(_ link: Link) {
        links.removeAll { $0 == link }
    }

    func closeDescriptors() {
        if let fd = directoryFD { close(fd); directoryFD = nil }
        if let fd = orphanFD { close(fd); orphanFD = nil }
    }
}

/// An open file or directory.
final class OverlayHandle {
    let node: UInt64
    /// The open upper file, when the file is in the upper directory (or the open made it so).
    var fd: Int32?
    let flags: Int32
    /// A directory handle's listing, taken when it is read from offset 0.
    var entries: [(name: [UInt8], id: UInt64, mode: UInt32)] = []

    init(node: UInt64, fd: Int32?, flags: Int32) {
        self.node = node
        self.fd = fd
        self.flags = flags
    }
}
