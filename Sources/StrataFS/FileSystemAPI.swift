#if canImport(Glibc)
import Glibc
#endif

// PUBLIC CONTRACT between the filesystem core and the FUSE adapter. The adapter depends on this;
// the core never imports FUSE. Inode 1 is the root (FUSE_ROOT_ID).

public struct Timestamp: Sendable, Equatable {
    public var seconds: Int64
    public var nanoseconds: UInt32
    public init(seconds: Int64, nanoseconds: UInt32) { self.seconds = seconds; self.nanoseconds = nanoseconds }
}

public struct NodeAttributes: Sendable, Equatable {
    public var inode: UInt64
    public var mode: UInt32      // file type bits (S_IFREG...) | permission bits
    public var nlink: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var blocks: UInt64    // 512-byte blocks
    public var rdev: UInt64      // makedev(major, minor) for devices
    public var atime: Timestamp
    public var mtime: Timestamp
    public var ctime: Timestamp
    public init(inode: UInt64, mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, size: UInt64,
                blocks: UInt64, rdev: UInt64, atime: Timestamp, mtime: Timestamp, ctime: Timestamp) {
        self.inode = inode; self.mode = mode; self.nlink = nlink; self.uid = uid; self.gid = gid
        self.size = size; self.blocks = blocks; self.rdev = rdev; self.atime = atime; self.mtime = mtime; self.ctime = ctime
    }
}

/// An errno to answer a request with (ENOENT, EIO...). The core logs the cause of an EIO itself.
public struct FSError: Error, Sendable, Equatable {
    public var code: Int32
    public init(_ code: Int32) { self.code = code }
}

public struct FileSystemStatistics: Sendable {
    public var blockSize: UInt64, fragmentSize: UInt64
    public var blocks: UInt64, blocksFree: UInt64, blocksAvailable: UInt64
    public var files: UInt64, filesFree: UInt64
    public var nameMax: UInt64
    public init(blockSize: UInt64, fragmentSize: UInt64, blocks: UInt64, blocksFree: UInt64, blocksAvailable: UInt64,
                files: UInt64, filesFree: UInt64, nameMax: UInt64) {
        self.blockSize = blockSize; self.fragmentSize = fragmentSize; self.blocks = blocks; self.blocksFree = blocksFree
        self.blocksAvailable = blocksAvailable; self.files = files; self.filesFree = filesFree; self.nameMax = nameMax
    }
}

/// The requests the FUSE adapter forwards. All methods may be called concurrently from
/// libfuse's worker threads. Names are raw bytes (no NUL), as the kernel gives them.
public protocol FileSystem: AnyObject, Sendable {
    func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes
    func forget(inode: UInt64, count: UInt64)
    func getattr(inode: UInt64) throws(FSError) -> NodeAttributes
    func readlink(inode: UInt64) throws(FSError) -> [UInt8]

    func opendir(inode: UInt64) throws(FSError) -> UInt64
    /// Calls `add` for entries from `offset` on ("." and ".." included) until it returns false
    /// (reply buffer full). `next` is the offset of the entry after this one. With `plus`, an entry
    /// that `add` accepted counts as one lookup of that inode (the kernel will forget it).
    func readdir(inode: UInt64, handle: UInt64, offset: UInt64, plus: Bool,
                 add: (_ name: UnsafeRawBufferPointer, _ attributes: NodeAttributes, _ next: UInt64) -> Bool) throws(FSError)
    func releasedir(inode: UInt64, handle: UInt64)

    func open(inode: UInt64, flags: Int32) throws(FSError) -> UInt64
    /// Gives `reply` the bytes of [offset, offset+size) (fewer at end of file). The bytes are valid
    /// only during the call: the adapter hands them to the kernel without copying.
    func read(inode: UInt64, handle: UInt64, offset: UInt64, size: Int,
              reply: (UnsafeRawBufferPointer) -> Void) throws(FSError)
    func release(inode: UInt64, handle: UInt64)

    func statfs(inode: UInt64) throws(FSError) -> FileSystemStatistics
    func getxattr(inode: UInt64, name: String) throws(FSError) -> [UInt8]
    func listxattr(inode: UInt64) throws(FSError) -> [String]
}
