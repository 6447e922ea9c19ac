import StrataFS
#if canImport(Glibc)
import Glibc
#endif

/// What the requests of an `OverlayFileSystem` change: its nodes, open handles and the
/// bookkeeping that ties upper inode numbers to nodes. Reached only under the file system's
/// lock (`OverlayFileSystem.locked`), as are the fields of the nodes and handles it holds. A
/// function that takes a `NodeTable` is called with the lock held.
final class NodeTable {
    var nodes: [UInt64: OverlayInode] = [:]
    /// Upper st_ino → node, for files copied up (they keep their lower number).
    var copiedUp: [UInt64: UInt64] = [:]
    /// Upper st_ino of entries this mount created (not copies of the lower file of that name,
    /// even when one exists: a file made after the lower one was deleted or renamed away).
    var madeInUpper = Set<UInt64>()
    /// Upper st_ino → node id, when the plain number (upperInodeBit | st_ino) still belongs
    /// to a removed node the kernel holds: ext4 reuses inode numbers at once, and the kernel
    /// must not take a new file for the old one (it keeps a symlink's target, attributes...).
    var upperAlias: [UInt64: UInt64] = [:]
    private var aliasCounter: UInt64 = 0
    static let aliasBit: UInt64 = 1 << 62
    /// ctime to show for an upper object whose ctime only changed because strata copied it
    /// up (or added a copy-up into it): node → (the upper ctime then, the ctime to report).
    /// A change the caller makes moves the upper ctime on, and the entry no longer applies.
    var ctimeShield: [UInt64: (upper: timespec, shown: Timestamp)] = [:]
    var handles: [UInt64: OverlayHandle] = [:]
    private var nextHandle: UInt64 = 1
    private var tempCounter: UInt64 = 0
    /// Lower hardlinked files: tree inode → the (lower directory, name) of each of its names.
    var lowerLinkNames: [UInt32: [(directory: UInt32, name: [UInt8])]]?

    init(root: OverlayInode) {
        nodes[root.id] = root
    }

    func node(_ id: UInt64) throws(FSError) -> OverlayInode {
        guard let n = nodes[id] else { throw FSError(ESTALE) }
        return n
    }

    func directory(_ id: UInt64) throws(FSError) -> OverlayInode {
        let n = try node(id)
        guard n.isDirectory else { throw FSError(ENOTDIR) }
        return n
    }

    func addHandle(_ h: OverlayHandle) -> UInt64 {
        let id = nextHandle
        nextHandle += 1
        handles[id] = h
        return id
    }

    /// A name for a new entry in the work directory's scratch, unique in this mount.
    func tempName() -> [CChar] {
        tempCounter += 1
        return Sys.name(Array("#\(String(tempCounter, radix: 16))".utf8))
    }

    /// The node number of an upper-only entry with upper inode `ino`.
    func upperOnlyID(_ ino: UInt64) -> UInt64 {
        if let alias = upperAlias[ino], !(nodes[alias]?.unlinked ?? false) { return alias }
        let plain = OverlayFileSystem.upperInodeBit | ino
        if let old = nodes[plain], old.unlinked {
            aliasCounter += 1
            let alias = OverlayFileSystem.upperInodeBit | Self.aliasBit | aliasCounter
            upperAlias[ino] = alias
            return alias
        }
        return plain
    }

    /// A node lost its last name in the view. Its upper inode number (if any) may now be
    /// reused by the upper file system for an unrelated entry: forget what tied it to `n`.
    func markUnlinked(_ n: OverlayInode, upperIno: UInt64?) {
        n.unlinked = true
        if !n.inUpper { n.unlinkedCtime = OverlayFileSystem.now() }
        guard let ino = upperIno else { return }
        if copiedUp[ino] == n.id { copiedUp[ino] = nil }
        if upperAlias[ino] == n.id { upperAlias[ino] = nil }
        madeInUpper.remove(ino)
    }
}
