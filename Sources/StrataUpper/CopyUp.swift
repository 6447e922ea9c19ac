import StrataFS
import StrataIndex
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Copy-up: the first change to a lower entry makes a copy of it in the upper directory.
/// The copy is built in the work directory (same file system) with its data, owner, mode,
/// xattrs and times, then renamed into place: a crash leaves either no copy or a whole one.
/// Caller holds the lock (the functions that take the `NodeTable`).
///
/// A regular file's data is streamed with the lock released (a big file would otherwise stall
/// every other request of the mount): the node is marked `copyingUp` meanwhile, and another
/// request that needs it copied up waits for the first instead of copying it again. So
/// `copyUp` may release the lock: callers call it before they look anything else up.
extension OverlayFileSystem {
    static let copyChunk = 1 << 20

    /// Makes sure `n` has an upper object. `dataLimit` copies at most that many bytes (a
    /// truncation follows, so the rest need not be read). May release the lock meanwhile (for a
    /// regular file's data, or to wait for another request's copy-up of `n`).
    func copyUp(_ t: NodeTable, _ n: OverlayInode, dataLimit: UInt64? = nil) throws(FSError) {
        while !n.inUpper && n.copyingUp { waitForCopyUpEnd() }
        if n.inUpper { return }
        if n.isDirectory { _ = try copyUpDirectory(t, n); return }
        try copyUpFile(t, n, dataLimit: dataLimit)
    }

    /// Whether `copyUp(n)` may release the lock: requests that look things up before copying a
    /// node up (rename, unlink) do this copy-up first and start over.
    func copyUpReleasesLock(_ n: OverlayInode) -> Bool {
        !n.inUpper && !n.isDirectory
    }

    /// The upper directory of `dir`, copying it and its missing ancestors up (top-down, so no
    /// recursion however deep the path).
    @discardableResult
    func copyUpDirectory(_ t: NodeTable, _ dir: OverlayInode) throws(FSError) -> Int32 {
        if dir.inUpper, let fd = dir.directoryFD { return fd }
        var chain: [OverlayInode] = []
        var current = dir
        while !(current.inUpper && current.directoryFD != nil) {
            chain.append(current)
            guard let link = current.links.first, let parent = t.nodes[link.parent] else { throw FSError(ENOENT) }
            current = parent
        }
        for d in chain.reversed() {
            guard let link = d.links.first, let parent = t.nodes[link.parent], let pfd = parent.directoryFD,
                  let l = d.lower else {
                Log.error("EIO: upper directory: copy-up of inode \(d.id): a parent directory is missing from the upper or the image")
                throw FSError(EIO)
            }
            let name = Sys.name(link.name)
            let temp = t.tempName()
            do throws(FSError) {
                try Sys.mkdirat(workFD, temp, 0o700)
                try copyMetadata(from: l, toDirectory: workFD, name: temp)
                try preservingTimes(t, of: parent) { () throws(FSError) in
                    try Sys.renameat(workFD, temp, pfd, name, flags: Sys.renameNoReplace)
                }
            } catch {
                Sys.removeTree(workFD, temp)
                throw error
            }
            d.directoryFD = try Sys.pathFD(pfd, name)
            d.inUpper = true
            becameUpper(d)
            if let st = try? Sys.fstat(d.directoryFD!) { t.ctimeShield[d.id] = (st.st_ctim, lower.attributes(l).ctime) }
        }
        return dir.directoryFD!
    }

    /// Owner, mode, xattrs and times of lower entry `l`, onto an upper entry (not followed).
    func copyMetadata(from l: UInt32, toDirectory dir: Int32, name: [CChar]) throws(FSError) {
        let a = lower.attributes(l)
        let isLink = a.mode & UInt32(S_IFMT) == UInt32(S_IFLNK)
        // chown first: it clears set-id bits and capabilities that chmod and xattrs then restore.
        try Sys.fchownat(dir, name, a.uid, a.gid)
        if !isLink { try Sys.chmodat(dir, name, mode_t(a.mode & 0o7777)) }
        for xattr in (try? lower.listxattr(inode: UInt64(l) + 1)) ?? [] where !OverlayFormat.isPrivate(xattr) {
            guard let value = try? lower.getxattr(inode: UInt64(l) + 1, name: xattr) else { continue }
            do throws(FSError) { try Sys.setxattr(.entry(directory: dir, name: name), xattr, value) } catch {
                // user.* cannot be set on symlinks or devices; other namespaces must copy.
                if !(xattr.hasPrefix("user.") && error.code == EPERM) { throw error }
            }
        }
        try Sys.utimensat(dir, name, [Self.unixTime(a.mtime), Self.unixTime(a.mtime)])
    }

    static func unixTime(_ t: Timestamp) -> timespec {
        Glibc.timespec(tv_sec: Int(t.seconds), tv_nsec: Int(t.nanoseconds))
    }

    /// Runs `body` (which adds an entry to directory `node`) and puts the directory's times
    /// back: a copy-up is not a change the directory's owner made. The ctime cannot be put
    /// back; the shield reports the one from before instead, until a real change.
    func preservingTimes(_ t: NodeTable, of node: OverlayInode, _ body: () throws(FSError) -> Void) throws(FSError) {
        guard let dir = node.directoryFD else {
            Log.error("EIO: upper directory: directory inode \(node.id) has no open descriptor")
            throw FSError(EIO)
        }
        let before = try Sys.fstat(dir)
        try body()
        let times = [before.st_atim, before.st_mtim]
        try? Sys.utimens(dir, times)
        var shown = Timestamp(seconds: Int64(before.st_ctim.tv_sec), nanoseconds: UInt32(before.st_ctim.tv_nsec))
        if let shield = t.ctimeShield[node.id], shield.upper.tv_sec == before.st_ctim.tv_sec,
           shield.upper.tv_nsec == before.st_ctim.tv_nsec { shown = shield.shown }
        if let after = try? Sys.fstat(dir) { t.ctimeShield[node.id] = (after.st_ctim, shown) }
    }

    /// Every (lower directory, name) of each lower file with several names; built on first need.
    func lowerNames(_ t: NodeTable, of l: UInt32) -> [(directory: UInt32, name: [UInt8])] {
        if t.lowerLinkNames == nil {
            var map: [UInt32: [(directory: UInt32, name: [UInt8])]] = [:]
            for dir in 0..<tree.inodeCount where tree.isDirectory[dir] {
                for child in tree.children[dir] where !tree.isDirectory[Int(child.inode)] && tree.nlink[Int(child.inode)] > 1 {
                    map[child.inode, default: []].append((UInt32(dir), Array(child.name)))
                }
            }
            t.lowerLinkNames = map
        }
        return t.lowerLinkNames?[l] ?? []
    }

    /// The view's node for lower directory `d`, if the view still shows it (under any name).
    func viewDirectory(_ t: NodeTable, lowerDirectory d: UInt32) -> OverlayInode? {
        if let n = t.nodes[UInt64(d) + 1], !n.unlinked, n.isDirectory, n.lower == d { return n }
        if d == 0 { return t.nodes[Self.rootID] }
        // Not known this session: walk its lower path from the root through the view.
        let path = lowerPath(d)
        var current = t.nodes[Self.rootID]!
        for part in path.split(separator: UInt8(ascii: "/")) {
            guard let next = try? resolve(t, current, Array(part)), next.isDirectory else { return nil }
            current = next
        }
        return current.id == UInt64(d) + 1 ? current : nil
    }

    /// Copies a file, symlink or special file up. A lower file with several names is copied once
    /// and the copy is linked under each of its names the view still shows, so a write through
    /// one name is seen through all of them.
    ///
    /// A regular file's data goes into the work file with the lock released; the names, the
    /// parents and the node's state are looked at only after that, with the lock held again.
    func copyUpFile(_ t: NodeTable, _ n: OverlayInode, dataLimit: UInt64?) throws(FSError) {
        guard let l = n.lower, !n.links.isEmpty else { throw FSError(ESTALE) }
        let a = lower.attributes(l)
        let temp = t.tempName()
        n.copyingUp = true
        defer {
            n.copyingUp = false
            signalCopyUpEnd()
        }
        do throws(FSError) {
            switch a.mode & UInt32(S_IFMT) {
            case UInt32(S_IFREG):
                try copyData(l, size: min(a.size, dataLimit ?? a.size), to: temp)
            case UInt32(S_IFLNK):
                let target = try lower.readlink(inode: UInt64(l) + 1)
                try Sys.symlinkat(Sys.name(target), workFD, temp)
            default:
                try Sys.mknodat(workFD, temp, mode_t(a.mode & UInt32(S_IFMT)) | 0o600, dev_t(a.rdev))
            }
            // Removed from the view while its data was copied (its last name unlinked, or
            // renamed over): nothing to put in place.
            guard let primary = n.links.first, let primaryParent = t.nodes[primary.parent] else { throw FSError(ESTALE) }
            var places: [Link] = [primary]
            if tree.nlink[Int(l)] > 1 {
                for (d, name) in lowerNames(t, of: l) {
                    guard let dir = viewDirectory(t, lowerDirectory: d),
                          let other = try? resolve(t, dir, name), other === n, !other.inUpper else { continue }
                    let link = Link(parent: dir.id, name: name)
                    if !places.contains(link) { places.append(link) }
                }
            }
            try copyMetadata(from: l, toDirectory: workFD, name: temp)
            // Every other name first (links of the complete copy), the first name last.
            for place in places.dropFirst() {
                guard let dir = t.nodes[place.parent] else { continue }
                let dfd = try copyUpDirectory(t, dir)
                try preservingTimes(t, of: dir) { () throws(FSError) in
                    try Sys.linkat(workFD, temp, dfd, Sys.name(place.name))
                }
                n.addLink(place)
            }
            let pfd = try copyUpDirectory(t, primaryParent)
            try preservingTimes(t, of: primaryParent) { () throws(FSError) in
                try Sys.renameat(workFD, temp, pfd, Sys.name(primary.name), flags: Sys.renameNoReplace)
            }
            let st = try Sys.stat(pfd, Sys.name(primary.name))
            t.copiedUp[UInt64(st.st_ino)] = n.id
            t.ctimeShield[n.id] = (st.st_ctim, a.ctime)
        } catch {
            try? Sys.unlinkat(workFD, temp)
            throw error
        }
        n.inUpper = true
        becameUpper(n)
    }

    /// Streams a lower file's bytes into a new work file, a chunk at a time, with the lock
    /// released (the work file is created with it held). Chunks of zeros in a sparse file stay
    /// holes. Caller holds the lock.
    ///
    /// The one place that releases the lock in the middle of a request. No `NodeTable` is
    /// passed here, so nothing below can touch the table; meanwhile the node is marked
    /// `copyingUp`, which keeps it in the table and makes others wait for it (`copyUp`), and
    /// `copyUpFile` looks at names and parents afresh once the lock is held again.
    func copyData(_ l: UInt32, size: UInt64, to temp: [CChar]) throws(FSError) {
        let fd = try Sys.openat(workFD, temp, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        defer { close(fd) }
        let sparse = lower.tree.isSparse(l)
        try Sys.truncate(fd, size)
        if size == 0 { return }
        try withoutLock { () throws(FSError) in try streamData(l, size: size, sparse: sparse, to: fd) }
    }

    /// The data part of `copyData`: the layers and the work file only, no table state.
    private func streamData(_ l: UInt32, size: UInt64, sparse: Bool, to fd: Int32) throws(FSError) {
        var offset: UInt64 = 0
        var failure: FSError?
        while offset < size && failure == nil {
            let count = Int(min(UInt64(Self.copyChunk), size - offset))
            var got = 0
            try lower.read(inode: UInt64(l) + 1, handle: 0, offset: offset, size: count) { bytes in
                got = bytes.count
                if sparse && !bytes.contains(where: { $0 != 0 }) { return }
                do throws(SystemError) {
                    try FileDescriptor(rawValue: fd).writeAll(bytes, at: offset)
                } catch {
                    failure = FSError(error)
                }
            }
            if got == 0 { break }
            offset += UInt64(got)
            let settings = RuntimeSettings.current
            if settings.copyUpDelayMilliseconds > 0 { usleep(settings.copyUpDelayMilliseconds * 1000) }
            if let gate = settings.copyUpGate, offset < size { TestGate.wait(for: gate) }
        }
        if let failure { throw failure }
    }
}
