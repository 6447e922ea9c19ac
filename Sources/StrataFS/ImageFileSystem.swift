import StrataIndex
import StrataUnion
import StrataSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The read-only filesystem core: answers FUSE-shaped requests from the merged tree and reads
/// file data through the layers' span readers. Everything it holds is immutable after init, so
/// requests run concurrently without locks (the span cache has its own).
public final class ImageFileSystem: FileSystem, Sendable {
    public let tree: MergedTree
    public let layers: [LayerData]
    private let totalBytes: UInt64
    static let directorySize: UInt64 = 4096
    /// Per-thread buffers in which sparse reads are assembled (holes as zeros).
    private static let sparseBuffers = ThreadScratch()

    /// Set with `strata mount --record-reads`: notes each regular file's first read.
    public let readRecorder: ReadRecorder?

    public init(tree: MergedTree, layers: [LayerData], readRecorder: ReadRecorder? = nil) {
        self.tree = tree
        self.layers = layers
        self.readRecorder = readRecorder
        var total: UInt64 = 0
        for layer in layers { total += layer.index.uncompressedSize }
        totalBytes = total
    }

    /// Bytes of layer data decoded so far (gzip and zstd spans): what serving the mount has
    /// cost, against the image's total.
    public var inflatedBytes: UInt64 { layers.first?.cache.decodedBytes ?? 0 }

    /// Bytes of file data handed to readers so far: what `inflatedBytes` is weighed against
    /// (a program's first start should inflate little more than it reads).
    public var servedBytes: UInt64 { served.load(ordering: .relaxed) }
    private let served = Atomic<UInt64>(0)

    // FUSE inode numbers are tree inodes + 1: the root is FUSE_ROOT_ID (1).
    @inline(__always) private func node(_ fuseInode: UInt64) throws(FSError) -> UInt32 {
        guard fuseInode >= 1, fuseInode <= UInt64(tree.inodeCount) else { throw FSError(ESTALE) }
        return UInt32(fuseInode - 1)
    }

    public func attributes(_ inode: UInt32) -> NodeAttributes {
        let st = tree.stat(inode)
        let time = Timestamp(seconds: st.mtimeSeconds, nanoseconds: st.mtimeNanoseconds)
        return NodeAttributes(inode: UInt64(inode) + 1, mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid,
                              size: st.size, blocks: st.blocks, rdev: st.rdev, atime: time, mtime: time, ctime: time, stable: true)
    }

    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes {
        let dir = try node(parent)
        guard tree.isDirectory(dir) else { throw FSError(ENOTDIR) }
        guard let inode = tree.lookup(dir, name) else { throw FSError(ENOENT) }
        return attributes(inode)
    }

    // The tree never changes, so inodes live as long as the mount: nothing to forget.
    public func forget(inode: UInt64, count: UInt64) {}

    public func getattr(inode: UInt64) throws(FSError) -> NodeAttributes {
        attributes(try node(inode))
    }

    public func readlink(inode: UInt64) throws(FSError) -> [UInt8] {
        guard let target = tree.symlinkTarget(try node(inode)) else { throw FSError(EINVAL) }
        return Array(target)
    }

    public func opendir(inode: UInt64) throws(FSError) -> UInt64 {
        guard tree.isDirectory(try node(inode)) else { throw FSError(ENOTDIR) }
        return 0
    }

    private static let dot: [UInt8] = [UInt8(ascii: ".")]
    private static let dotdot: [UInt8] = [UInt8(ascii: "."), UInt8(ascii: ".")]

    public func readdir(inode: UInt64, handle: UInt64, offset: UInt64, plus: Bool,
                        add: (UnsafeRawBufferPointer, NodeAttributes, UInt64) -> Bool) throws(FSError) {
        let dir = try node(inode)
        guard tree.isDirectory(dir) else { throw FSError(ENOTDIR) }
        let children = tree.children(of: dir)
        var position = offset
        if position == 0 {
            let ok = Self.dot.withUnsafeBytes { add($0, attributes(dir), 1) }
            if !ok { return }
            position = 1
        }
        if position == 1 {
            let ok = Self.dotdot.withUnsafeBytes { add($0, attributes(tree.parentOf(dir)), 2) }
            if !ok { return }
            position = 2
        }
        while position - 2 < UInt64(children.count) {
            let child = children[children.startIndex + Int(position - 2)]
            if !add(child.name, attributes(child.inode), position + 1) { return }
            position += 1
        }
    }

    public func releasedir(inode: UInt64, handle: UInt64) {}

    public func open(inode: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        let n = try node(inode)
        if tree.isDirectory(n) { throw FSError(EISDIR) }
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { throw FSError(EROFS) }
        return 0
    }

    public func read(inode: UInt64, handle: UInt64, offset: UInt64, size: Int,
                     reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        let n = try node(inode)
        guard tree.isRegular(n) else { throw FSError(EISDIR) }
        let fileSize = tree.size(n)
        guard offset < fileSize, size > 0 else { reply(UnsafeRawBufferPointer(start: nil, count: 0)); return }
        let count = Int(min(UInt64(size), fileSize - offset))
        let layer = layers[tree.layer(n)]
        served.add(UInt64(count), ordering: .relaxed)
        readRecorder?.note(n)
        do {
            if tree.isSparse(n) {
                try readSparse(n, layer: layer, offset: offset, count: count, reply: reply)
            } else {
                try layer.read(offset: tree.dataOffset(n) + offset, count: count, reply: reply)
            }
        } catch {
            // The one line a reader's EIO gets: which layer, which entry, and why.
            Log.error("EIO: layer sha256:\(layer.blob.digestHex): \(tree.path(of: n)): read of \(count) bytes at offset \(offset): \(error)")
            throw FSError(EIO)
        }
    }

    /// A sparse file's data segments are stored one after another; holes read as zeros.
    private func readSparse(_ n: UInt32, layer: LayerData, offset: UInt64, count: Int,
                            reply: (UnsafeRawBufferPointer) -> Void) throws {
        let buffer = UnsafeMutableRawBufferPointer(start: Self.sparseBuffers.get(count), count: count)
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        let end = offset + UInt64(count)
        var stored = tree.dataOffset(n)
        for i in 0..<tree.sparseCount(n) {
            let segment = tree.sparseSegment(n, i)
            defer { stored += segment.length }
            let segmentEnd = segment.offset + segment.length
            if segmentEnd <= offset || segment.offset >= end { continue }
            let from = max(offset, segment.offset)
            let to = min(end, segmentEnd)
            try layer.copy(offset: stored + (from - segment.offset),
                           into: UnsafeMutableRawBufferPointer(rebasing: buffer[Int(from - offset)..<Int(to - offset)]))
        }
        reply(UnsafeRawBufferPointer(buffer))
    }

    public func release(inode: UInt64, handle: UInt64) {}

    public func statfs(inode: UInt64) throws(FSError) -> FileSystemStatistics {
        FileSystemStatistics(blockSize: 4096, fragmentSize: 4096, blocks: (totalBytes + 4095) / 4096, blocksFree: 0,
                             blocksAvailable: 0, files: UInt64(tree.inodeCount), filesFree: 0, nameMax: 255)
    }

    public func getxattr(inode: UInt64, name: String) throws(FSError) -> [UInt8] {
        let n = try node(inode)
        let wanted = Array(name.utf8)
        for i in 0..<tree.xattrCount(n) {
            let x = tree.xattr(n, i)
            if x.name.elementsEqual(wanted) { return Array(x.value) }
        }
        throw FSError(ENODATA)
    }

    public func listxattr(inode: UInt64) throws(FSError) -> [String] {
        let n = try node(inode)
        return (0..<tree.xattrCount(n)).map { String(decoding: tree.xattr(n, $0).name, as: UTF8.self) }
    }
}
