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
    /// Only this mount's own requests can change the node (on a writable mount: an image entry
    /// never copied up), and the core tells the adapter when that stops being so
    /// (`KernelCacheNotifier`): the kernel may keep its entry, attributes and pages as long as a
    /// read-only mount's. Always true for a read-only tree.
    public var stable: Bool
    public init(inode: UInt64, mode: UInt32, nlink: UInt32, uid: UInt32, gid: UInt32, size: UInt64,
                blocks: UInt64, rdev: UInt64, atime: Timestamp, mtime: Timestamp, ctime: Timestamp, stable: Bool = false) {
        self.inode = inode; self.mode = mode; self.nlink = nlink; self.uid = uid; self.gid = gid
        self.size = size; self.blocks = blocks; self.rdev = rdev; self.atime = atime; self.mtime = mtime; self.ctime = ctime
        self.stable = stable
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
    /// `handle` is 0 when the adapter answered OPEN with a zero-message open (read-only mounts).
    /// Gives `reply` the bytes of [offset, offset+size) (fewer at end of file). The bytes are valid
    /// only during the call: the adapter hands them to the kernel without copying.
    func read(inode: UInt64, handle: UInt64, offset: UInt64, size: Int,
              reply: (UnsafeRawBufferPointer) -> Void) throws(FSError)
    func release(inode: UInt64, handle: UInt64)

    func statfs(inode: UInt64) throws(FSError) -> FileSystemStatistics
    func getxattr(inode: UInt64, name: String) throws(FSError) -> [UInt8]
    func listxattr(inode: UInt64) throws(FSError) -> [String]
}

/// Who makes a request: new entries belong to the caller (uid, gid, umask applied to modes).
public struct RequestContext: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var pid: Int32
    public var umask: UInt32
    public init(uid: UInt32, gid: UInt32, pid: Int32, umask: UInt32) {
        self.uid = uid; self.gid = gid; self.pid = pid; self.umask = umask
    }
}

/// What a setattr request changes; nil fields stay as they are.
public struct AttributeChanges: Sendable {
    public enum Time: Sendable { case now, at(Timestamp) }
    public var mode: UInt32?
    public var uid: UInt32?
    public var gid: UInt32?
    public var size: UInt64?
    public var atime: Time?
    public var mtime: Time?
    public init(mode: UInt32? = nil, uid: UInt32? = nil, gid: UInt32? = nil, size: UInt64? = nil,
                atime: Time? = nil, mtime: Time? = nil) {
        self.mode = mode; self.uid = uid; self.gid = gid; self.size = size; self.atime = atime; self.mtime = mtime
    }
}

/// How a writable core tells the kernel (through the FUSE adapter) that what it keeps of a
/// stable node (see `NodeAttributes.stable`) is no longer true: its attributes changed without
/// a reply the kernel saw (a copy-up). Data needs no notice: every write reaches the file
/// through the kernel, which updates the pages it keeps.
public protocol KernelCacheNotifier: AnyObject, Sendable {
    /// The kernel forgets the node's attributes and asks again. Never waits on a request, so it
    /// may be called from one.
    func invalidateAttributes(inode: UInt64)
}

/// The requests of a writable mount (an upper layer over the image). The FUSE adapter wires
/// these only when the filesystem it serves conforms.
public protocol WritableFileSystem: FileSystem {
    /// Opens as `open`, and says whether the kernel may keep the file's pages between opens
    /// (a stable node: nothing but this mount's requests changes its data).
    func openKeepingCache(inode: UInt64, flags: Int32) throws(FSError) -> (handle: UInt64, keepCache: Bool)
    /// The adapter's way to the kernel's caches, while a session serves (nil when it ends).
    func attach(notifier: (any KernelCacheNotifier)?)
    func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32,
                context: RequestContext) throws(FSError) -> (attributes: NodeAttributes, handle: UInt64)
    func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64,
               context: RequestContext) throws(FSError) -> NodeAttributes
    func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32,
               context: RequestContext) throws(FSError) -> NodeAttributes
    func symlink(parent: UInt64, name: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                 context: RequestContext) throws(FSError) -> NodeAttributes
    func link(inode: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes
    func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError)
    func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError)
    /// `flags`: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
    func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64,
                newName: UnsafeRawBufferPointer, flags: UInt32) throws(FSError)
    func write(inode: UInt64, handle: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(FSError) -> Int
    func setattr(inode: UInt64, handle: UInt64?, changes: AttributeChanges,
                 context: RequestContext) throws(FSError) -> NodeAttributes
    func fallocate(inode: UInt64, handle: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError)
    func setxattr(inode: UInt64, name: String, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError)
    func removexattr(inode: UInt64, name: String) throws(FSError)
    func flush(inode: UInt64, handle: UInt64) throws(FSError)
    func fsync(inode: UInt64, handle: UInt64, dataOnly: Bool) throws(FSError)
    func fsyncdir(inode: UInt64, handle: UInt64, dataOnly: Bool) throws(FSError)
}

extension WritableFileSystem {
    public func openKeepingCache(inode: UInt64, flags: Int32) throws(FSError) -> (handle: UInt64, keepCache: Bool) {
        (try open(inode: inode, flags: flags), false)
    }
    public func attach(notifier: (any KernelCacheNotifier)?) {}
}
