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
    /// Handle numbers start at this process's start time in nanoseconds: a server that takes a
    /// mount over never hands out a number the kernel still holds from the one before.
    private var nextHandle: UInt64 = NodeTable.handleBase()
    private var tempCounter: UInt64 = 0
    /// Set when this server took a live mount over (OverlayFileSystem+Takeover.swift): finds
    /// a node the kernel got from the previous server.
    var recover: ((NodeTable, UInt64) -> OverlayInode?)?
    /// Lower hardlinked files: tree inode → the (lower directory, name) of each of its names.
    var lowerLinkNames: [UInt32: [(directory: UInt32, name: [UInt8])]]?

    init(root: OverlayInode) {
        nodes[root.id] = root
    }

    func node(_ id: UInt64) throws(FSError) -> OverlayInode {
        if let n = nodes[id] { return n }
        if let recover, let n = recover(self, id) { return n }
        throw FSError(ESTALE)
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

    /// A name for a new entry in the work directory's scratch, unique in this mount (and
    /// across the servers of one mount: the scratch is kept when one takes over).
    func tempName() -> [CChar] {
        tempCounter += 1
        return Sys.name(Array("#\(String(getpid(), radix: 16))-\(String(tempCounter, radix: 16))".utf8))
    }

    /// The scratch name that keeps node `id` while it is open but has no name in the view: a
    /// server taking the mount over finds it by the node number.
    static func orphanName(_ id: UInt64) -> [CChar] {
        Sys.name(Array("#orphan-\(String(id, radix: 16))".utf8))
    }

    static func handleBase() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return (UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)) & ~(UInt64(1) << 63)
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
