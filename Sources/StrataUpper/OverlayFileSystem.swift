import StrataFS
import StrataSystem
import StrataUnion
#if canImport(Glibc)
import Glibc
#endif

public struct UpperError: SystemErrorWrapping, Sendable {
    public var message: String
    /// The failed system call behind it, if one is.
    public var cause: SystemError?
    public init(_ message: String, cause: SystemError? = nil) { self.message = message; self.cause = cause }
}

/// The writable view: the image (`ImageFileSystem`, read-only) under an upper directory that
/// takes every change, in kernel overlayfs's format (see `Overlay`).
///
/// One lock guards the node table (`NodeTable`) and every change to the upper directory, so a
/// lookup never sees half of a rename. File data does not take it: reads and writes of open
/// files go straight to their descriptors (or to the layers, for a file never copied up), and a
/// copy-up streams a file's data into the work directory with the lock released (`copyData`,
/// the one place that releases it).
public final class OverlayFileSystem: WritableFileSystem, Sendable {
    public let lower: ImageFileSystem
    let tree: MergedTree
    /// The upper directory (Sys.oPath) and the work directory's scratch subdirectory (Sys.oPath).
    let upperFD: Int32
    let workFD: Int32
    /// Held for the life of the mount: flock on the upper directory and on WORK/strata.lock.
    private let lockFDs: [Int32]
    /// What requests change, behind the lock; its condition is broadcast when a copy-up that
    /// ran without the lock ends.
    private let table: Locked<NodeTable>
    /// The kernel's caches (set by the FUSE adapter while a session serves): what it keeps of a
    /// node never copied up (long timeouts, pages) is invalidated when the node gets an upper object.
    private let notifier = Locked<(any KernelCacheNotifier)?>(nil)
    /// Handles opened read-only on a file with no upper object, and their node: their READs
    /// take this short lock, not the table's (which a listing holds for all its entries), as
    /// long as the node has no upper object (`OverlayInode.hasUpper`). Changed with the table
    /// lock held (table lock first).
    let lowerHandles = Locked<[UInt64: OverlayInode]>([:])

    static let upperInodeBit: UInt64 = 1 << 63
    static let rootID: UInt64 = 1

    /// Opens (creating them if missing) the upper and work directories and locks them.
    /// `work` must be on the upper's file system: copy-ups are renamed from it into the upper.
    /// `takingOver`: a live mount's previous server holds the locks until it exits (wait for
    /// them), its scratch holds open files (keep it), and the kernel holds its node numbers
    /// and handles (find them again: OverlayFileSystem+Takeover.swift).
    public init(lower: ImageFileSystem, upper: String, work: String, takingOver: Bool = false) throws {
        self.lower = lower
        self.tree = lower.tree
        try FileIO.makeDirectories(upper, mode: 0o755)
        try FileIO.makeDirectories(work, mode: 0o700)
        let upDir: FileDescriptor, wkDir: FileDescriptor
        do { upDir = try FileDescriptor.openat(.currentDirectory, upper, O_RDONLY | O_DIRECTORY) } catch {
            throw SystemError(code: error.code, operation: "open upper directory", path: upper)
        }
        do { wkDir = try FileDescriptor.openat(.currentDirectory, work, O_RDONLY | O_DIRECTORY) } catch {
            upDir.close()
            throw SystemError(code: error.code, operation: "open work directory", path: work)
        }
        let up = upDir.rawValue, wk = wkDir.rawValue
        var fds = [up, wk]
        func fail(_ message: String, cause: SystemError? = nil) -> UpperError {
            for fd in fds { close(fd) }
            return UpperError(message, cause: cause)
        }
        // Two daemons writing one upper directory would corrupt each other's view.
        if (try? upDir.lock(takingOver ? LOCK_EX : LOCK_EX | LOCK_NB)) == nil {
            throw fail("upper directory \(upper) is in use by another mount")
        }
        let lockFile: FileDescriptor
        do { lockFile = try FileDescriptor.openat(wkDir, "strata.lock", O_RDWR | O_CREAT | O_NOFOLLOW, mode: 0o600) } catch {
            throw fail("work directory \(work): cannot create strata.lock", cause: error)
        }
        fds.append(lockFile.rawValue)
        if (try? lockFile.lock(takingOver ? LOCK_EX : LOCK_EX | LOCK_NB)) == nil {
            throw fail("work directory \(work) is in use by another mount (\(work)/strata.lock is locked)")
        }
        let upperStat = (try? upDir.stat()) ?? Glibc.stat(), workStat = (try? wkDir.stat()) ?? Glibc.stat()
        guard upperStat.st_dev == workStat.st_dev else {
            throw fail("work directory \(work) is not on the file system of the upper directory \(upper)")
        }
        guard upperStat.st_ino != workStat.st_ino else { throw fail("the work directory must not be the upper directory") }
        // Leftovers of a crash (half-made copy-ups, removed directories) go; they never were in the view.
        if !takingOver || !FileIO.isDirectory(work + "/tmp") {
            Sys.removeTree(wk, Sys.name(Array("tmp".utf8)))
            do { try wkDir.makeDirectory(at: "tmp", mode: 0o700) } catch {
                throw fail("work directory \(work): cannot create tmp", cause: error)
            }
        }
        guard let scratch = try? FileDescriptor.openat(wkDir, "tmp", Sys.oPath | O_DIRECTORY | O_NOFOLLOW).rawValue else {
            throw fail("work directory \(work): cannot open tmp")
        }
        upperFD = (try? FileDescriptor.openat(upDir, ".", Sys.oPath | O_DIRECTORY).rawValue) ?? -1
        workFD = scratch
        lockFDs = fds
        Self.raiseDescriptorLimit()
        let root = OverlayInode(id: Self.rootID, isDirectory: true, lower: 0, inUpper: true, links: [])
        root.directoryFD = try? Sys.dup(upperFD)
        root.lookups = 1
        table = Locked(NodeTable(root: root))
        if takingOver { enableTakeoverRecovery() }
    }

    deinit {
        locked { t in
            for node in t.nodes.values { dropOrphanName(node); node.closeDescriptors() }
            for h in t.handles.values { if let fd = h.fd { close(fd) } }
        }
        close(upperFD); close(workFD)
        for fd in lockFDs { close(fd) }
    }

    /// Each directory of the view that the kernel knows holds a descriptor: allow many.
    private static func raiseDescriptorLimit() {
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit)
        }
    }

    /// Runs `body` with the lock held: the only way to the table.
    @inline(__always)
    func locked<T, E: Error>(_ body: (NodeTable) throws(E) -> T) throws(E) -> T {
        try table.withLock { (t: inout NodeTable) throws(E) -> T in try body(t) }
    }

    /// Runs `body` with the lock released; the caller holds it, and holds it again afterwards.
    /// Whatever the caller looked up under the lock may have changed by then.
    func withoutLock<T>(_ body: () throws(FSError) -> T) throws(FSError) -> T {
        try table.withLockReleased(body)
    }

    /// Waits (the lock released meanwhile) until some copy-up in progress ends. Caller holds
    /// the lock and checks again what it waits for: the one that ended may be another's.
    func waitForCopyUpEnd() {
        table.wait()
    }

    /// Wakes the requests waiting for a copy-up. Caller holds the lock.
    func signalCopyUpEnd() {
        table.broadcast()
    }

    public func attach(notifier: (any KernelCacheNotifier)?) {
        self.notifier.withLock { $0 = notifier }
    }

    /// Node `n` got an upper object (a copy-up, or one found in the upper): the kernel kept its
    /// attributes as a stable node's (`NodeAttributes.stable`), and they may differ now.
    func becameUpper(_ n: OverlayInode) {
        notifier.withLock { $0 }?.invalidateAttributes(inode: n.id)
    }

    // MARK: Nodes

    /// The entry named `name` in the lower directory merged into `parent`.
    func lowerChild(_ parent: OverlayInode, _ name: [UInt8]) -> UInt32? {
        guard let l = parent.lower else { return nil }
        return name.withUnsafeBytes { tree.lookup(l, $0) }
    }

    static func checkName(_ name: [UInt8]) throws(FSError) {
        if name.count > Int(NAME_MAX) { throw FSError(ENAMETOOLONG) }
    }

    /// Resolves `name` in `parent` the way overlayfs does: the upper entry first (a whiteout
    /// hides the name; an opaque directory hides the lower one; a redirect names the lower
    /// directory to merge), then the lower one. Registers the node without counting a lookup.
    func resolve(_ t: NodeTable, _ parent: OverlayInode, _ name: [UInt8]) throws(FSError) -> OverlayInode {
        guard parent.isDirectory else { throw FSError(ENOTDIR) }
        try Self.checkName(name)
        let link = Link(parent: parent.id, name: name)
        if parent.inUpper, let pfd = parent.directoryFD {
            let cname = Sys.name(name)
            if let st = try Sys.statIfPresent(pfd, cname) {
                if OverlayFormat.isWhiteout(st) { throw FSError(ENOENT) }
                if st.st_mode & S_IFMT == S_IFDIR {
                    let fd = try Sys.pathFD(pfd, cname)
                    var lowerDirectory: UInt32?
                    if let r = Overlay.redirect(fd) {
                        lowerDirectory = resolveRedirect(r, parent: parent)
                    } else if !Overlay.isOpaque(fd), let l = lowerChild(parent, name), tree.isDirectory[Int(l)] {
                        lowerDirectory = l
                    }
                    let id = lowerDirectory.map { UInt64($0) + 1 } ?? t.upperOnlyID(UInt64(st.st_ino))
                    let n = t.nodes[id] ?? OverlayInode(id: id, isDirectory: true, lower: lowerDirectory, inUpper: true, links: [])
                    t.nodes[id] = n
                    if let old = n.directoryFD, (try? Sys.fstat(old))?.st_ino == st.st_ino {
                        close(fd)
                    } else {
                        if let old = n.directoryFD { close(old) }
                        n.directoryFD = fd
                    }
                    n.isDirectory = true
                    n.lower = lowerDirectory
                    if !n.inUpper { becameUpper(n) }
                    n.inUpper = true
                    n.unlinked = false
                    n.addLink(link)
                    return n
                }
                let ino = UInt64(st.st_ino)
                var id: UInt64
                if let known = t.copiedUp[ino] {
                    id = known
                } else if !t.madeInUpper.contains(ino), let l = lowerChild(parent, name), !tree.isDirectory[Int(l)],
                          !(t.nodes[UInt64(l) + 1].map { $0.inUpper || $0.unlinked } ?? false) {
                    // A copy-up from an earlier mount (this one records its own): it keeps the
                    // lower number, unless that node already has an upper object or was removed.
                    id = UInt64(l) + 1
                    t.copiedUp[ino] = id
                } else {
                    id = t.upperOnlyID(ino)
                }
                let n = t.nodes[id] ?? OverlayInode(id: id, isDirectory: false, lower: id < Self.upperInodeBit ? UInt32(id - 1) : nil,
                                                   inUpper: true, links: [])
                t.nodes[id] = n
                if !n.inUpper { becameUpper(n) }
                n.isDirectory = false
                n.inUpper = true
                n.unlinked = false
                n.addLink(link)
                return n
            }
        }
        guard let l = lowerChild(parent, name) else { throw FSError(ENOENT) }
        let id = UInt64(l) + 1
        let n = t.nodes[id] ?? OverlayInode(id: id, isDirectory: tree.isDirectory[Int(l)], lower: l, inUpper: false, links: [])
        t.nodes[id] = n
        n.unlinked = false
        n.addLink(link)
        return n
    }

    static func now() -> Timestamp {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Timestamp(seconds: Int64(t.tv_sec), nanoseconds: UInt32(t.tv_nsec))
    }

    /// The lower directory a `trusted.overlay.redirect` names: an absolute path from the lower
    /// root, or a name in the parent's lower directory.
    func resolveRedirect(_ value: [UInt8], parent: OverlayInode) -> UInt32? {
        var current: UInt32
        if value.first == UInt8(ascii: "/") { current = 0 } else {
            guard let l = parent.lower else { return nil }
            current = l
        }
        for part in value.split(separator: UInt8(ascii: "/")) {
            guard let next = Array(part).withUnsafeBytes({ tree.lookup(current, $0) }) else { return nil }
            current = next
        }
        return tree.isDirectory[Int(current)] ? current : nil
    }

    /// The absolute lower path of a lower directory ("/a/b"), for a redirect.
    func lowerPath(_ inode: UInt32) -> [UInt8] {
        var parts: [[UInt8]] = []
        var current = inode
        while current != 0 {
            let parent = tree.parent[Int(current)]
            guard let child = tree.children[Int(parent)].first(where: { $0.inode == current }) else { break }
            parts.append(Array(child.name))
            current = parent
        }
        var path: [UInt8] = []
        for part in parts.reversed() { path.append(UInt8(ascii: "/")); path += part }
        return path.isEmpty ? [UInt8(ascii: "/")] : path
    }

    /// Drops a node the kernel no longer knows and nobody has open.
    func dropIfUnused(_ t: NodeTable, _ n: OverlayInode) {
        guard n.id != Self.rootID, n.lookups == 0, n.opens == 0, !n.copyingUp else { return }
        dropOrphanName(n)
        n.closeDescriptors()
        t.nodes[n.id] = nil
    }

    // MARK: The upper object of a node

    enum UpperObject {
        case entry(directory: Int32, name: [CChar])
        case descriptor(Int32)
    }

    /// Where the node's upper object is: its directory's descriptor, or a name in a directory.
    func upperObject(_ t: NodeTable, _ n: OverlayInode) throws(FSError) -> UpperObject {
        guard n.inUpper else {
            Log.error("EIO: upper directory: inode \(n.id) has no upper object to change")
            throw FSError(EIO)
        }
        if n.isDirectory, let fd = n.directoryFD { return .descriptor(fd) }
        for link in n.links {
            if let p = t.nodes[link.parent], p.inUpper, let pfd = p.directoryFD { return .entry(directory: pfd, name: Sys.name(link.name)) }
        }
        if let name = n.orphanName { return .entry(directory: workFD, name: name) }
        if let fd = n.orphanFD { return .descriptor(fd) }
        throw FSError(ESTALE)
    }

    /// Called before the last name of `n` (open, or known to the kernel) goes from `dir`: keeps
    /// it reachable by descriptor (`orphanFD`) and by a name in the work directory's scratch,
    /// so that reopening it needs no /proc. Without that name (a file system refusing the
    /// link), /proc/self/fd is the way.
    func keepOrphan(_ t: NodeTable, _ n: OverlayInode, _ dir: Int32, _ name: [CChar]) throws(FSError) {
        n.orphanFD = try Sys.pathFD(dir, name)
        let temp = NodeTable.orphanName(n.id)
        try? Sys.unlinkat(workFD, temp)   // a previous server's, of a node since dropped
        if (try? Sys.linkat(dir, name, workFD, temp)) != nil { n.orphanName = temp }
    }

    func dropOrphanName(_ n: OverlayInode) {
        guard let name = n.orphanName else { return }
        try? Sys.unlinkat(workFD, name)
        n.orphanName = nil
    }

    func upperStat(_ t: NodeTable, _ n: OverlayInode) throws(FSError) -> stat {
        switch try upperObject(t, n) {
        case .descriptor(let fd): return try Sys.fstat(fd)
        case .entry(let dir, let name): return try Sys.stat(dir, name)
        }
    }

    func attributes(_ t: NodeTable, _ n: OverlayInode) throws(FSError) -> NodeAttributes {
        var a: NodeAttributes
        if n.inUpper {
            let st = try upperStat(t, n)
            a = Self.attributes(st, id: n.id)
            if let shield = t.ctimeShield[n.id], shield.upper.tv_sec == st.st_ctim.tv_sec, shield.upper.tv_nsec == st.st_ctim.tv_nsec {
                a.ctime = shield.shown
            }
            if n.isDirectory, n.lower != nil, let fd = n.directoryFD { a.nlink = mergedLinkCount(n, upper: st, fd: fd) }
        } else {
            guard let l = n.lower else {
                Log.error("EIO: upper directory: inode \(n.id) is in neither the upper nor the image")
                throw FSError(EIO)
            }
            a = lower.attributes(l)
            a.inode = n.id
            // Removing a name changes the file's ctime (ext4 does so even for the last name).
            if let t = n.unlinkedCtime { a.ctime = t }
        }
        if n.unlinked { a.nlink = 0 }
        return a
    }

    /// A merged directory's link count as ext4 reports it (2 + its subdirectories): the upper's
    /// count (its own subdirectories, whiteouts are not directories) plus the lower
    /// subdirectories the upper neither replaces nor whites out. One fstatat per lower
    /// subdirectory; no listing of the upper directory.
    func mergedLinkCount(_ n: OverlayInode, upper st: stat, fd: Int32) -> UInt32 {
        guard let l = n.lower else { return UInt32(st.st_nlink) }
        var count = UInt32(st.st_nlink)
        for child in tree.children[Int(l)] where tree.isDirectory[Int(child.inode)] {
            do throws(FSError) {
                if try Sys.statIfPresent(fd, Sys.name(Array(child.name))) == nil { count += 1 }
            } catch {}
        }
        return count
    }

    static func attributes(_ st: stat, id: UInt64) -> NodeAttributes {
        NodeAttributes(inode: id, mode: UInt32(st.st_mode), nlink: UInt32(st.st_nlink), uid: st.st_uid, gid: st.st_gid,
                       size: UInt64(st.st_size), blocks: UInt64(st.st_blocks), rdev: UInt64(st.st_rdev),
                       atime: Timestamp(seconds: Int64(st.st_atim.tv_sec), nanoseconds: UInt32(st.st_atim.tv_nsec)),
                       mtime: Timestamp(seconds: Int64(st.st_mtim.tv_sec), nanoseconds: UInt32(st.st_mtim.tv_nsec)),
                       ctime: Timestamp(seconds: Int64(st.st_ctim.tv_sec), nanoseconds: UInt32(st.st_ctim.tv_nsec)))
    }

    // MARK: FileSystem (read side)

    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in
            let n = try resolve(t, try t.directory(parent), Array(name))
            let a = try attributes(t, n)
            n.lookups += 1
            return a
        }
    }

    public func forget(inode: UInt64, count: UInt64) {
        locked { t in
            guard let n = t.nodes[inode] else { return }
            n.lookups -= min(count, n.lookups)
            dropIfUnused(t, n)
        }
    }

    public func getattr(inode: UInt64) throws(FSError) -> NodeAttributes {
        try locked { t throws(FSError) -> NodeAttributes in try attributes(t, try t.node(inode)) }
    }

    public func readlink(inode: UInt64) throws(FSError) -> [UInt8] {
        try locked { t throws(FSError) -> [UInt8] in
            let n = try t.node(inode)
            if !n.inUpper { return try lower.readlink(inode: UInt64(n.lower!) + 1) }
            switch try upperObject(t, n) {
            case .entry(let dir, let name): return try Sys.readlinkat(dir, name)
            case .descriptor(let fd): return try Sys.readlinkat(fd, [0])
            }
        }
    }

    public func statfs(inode: UInt64) throws(FSError) -> FileSystemStatistics {
        let s = try Sys.statfs(upperFD)
        return FileSystemStatistics(blockSize: UInt64(s.f_bsize), fragmentSize: UInt64(s.f_frsize), blocks: UInt64(s.f_blocks),
                                    blocksFree: UInt64(s.f_bfree), blocksAvailable: UInt64(s.f_bavail),
                                    files: UInt64(s.f_files), filesFree: UInt64(s.f_ffree), nameMax: UInt64(s.f_namemax))
    }

    public func getxattr(inode: UInt64, name: String) throws(FSError) -> [UInt8] {
        if OverlayFormat.isPrivate(name) { throw FSError(ENODATA) }
        return try locked { t throws(FSError) -> [UInt8] in
            let n = try t.node(inode)
            if !n.inUpper { return try lower.getxattr(inode: UInt64(n.lower!) + 1, name: name) }
            return try Sys.getxattr(try upperObject(t, n), name)
        }
    }

    public func listxattr(inode: UInt64) throws(FSError) -> [String] {
        try locked { t throws(FSError) -> [String] in
            let n = try t.node(inode)
            let names = n.inUpper ? try Sys.listxattr(try upperObject(t, n))
                                  : try lower.listxattr(inode: UInt64(n.lower!) + 1)
            return names.filter { !OverlayFormat.isPrivate($0) }
        }
    }
}
