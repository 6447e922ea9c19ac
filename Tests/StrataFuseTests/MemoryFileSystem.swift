#if canImport(Glibc)
import Glibc
#endif
import StrataFS
import Synchronization

/// A small immutable tree held in memory, to drive the adapter with real system calls:
///
///     /hello.txt          "Hello, Strata!\n", mode 0644, uid 1000, mtime with nanoseconds
///     /link -> hello.txt
///     /xattrs             user.comment + a binary security.capability
///     /blob               3 MiB of patterned bytes
///     /big/               1000 files, entry-0000 ... entry-0999
///
/// It counts lookups per inode, as the real core must, so tests can look at the balance.
final class MemoryFileSystem: FileSystem, @unchecked Sendable {
    struct Node {
        var attributes: NodeAttributes
        var children: [(name: [UInt8], inode: UInt64)] = []
        var content: [UInt8] = []
        var xattrs: [(String, [UInt8])] = []
    }

    static let mtime = Timestamp(seconds: 1_700_000_000, nanoseconds: 123_456_789)
    static let blobSize = 3 << 20
    static let bigCount = 1000
    static let capability: [UInt8] = [0x01, 0x00, 0x00, 0x02,  // VFS_CAP_REVISION_2 | EFFECTIVE
                                      0x00, 0x04, 0x00, 0x00,  // permitted: CAP_NET_BIND_SERVICE
                                      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

    static func blobByte(_ offset: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (offset &* 2_654_435_761) >> 13 ^ offset)
    }

    private(set) var nodes: [UInt64: Node] = [:]
    let lookups = Mutex<[UInt64: Int64]>([:])
    let openHandles = Mutex<Int>(0)
    /// How many READDIR / READDIRPLUS requests arrived, and the largest READ.
    let readdirCalls = Mutex<(plain: Int, plus: Int)>((0, 0))
    /// How many LOOKUP requests arrived.
    let lookupCalls = Mutex<Int>(0)
    let largestRead = Mutex<Int>(0)

    init() {
        func attributes(_ inode: UInt64, _ mode: UInt32, size: Int = 0, nlink: UInt32 = 1) -> NodeAttributes {
            NodeAttributes(inode: inode, mode: mode, nlink: nlink, uid: 1000, gid: 1001, size: UInt64(size),
                           blocks: UInt64((size + 511) / 512), rdev: 0,
                           atime: Self.mtime, mtime: Self.mtime, ctime: Self.mtime)
        }
        let hello = Array("Hello, Strata!\n".utf8)
        nodes[2] = Node(attributes: attributes(2, S_IFREG | 0o644, size: hello.count), content: hello)
        nodes[3] = Node(attributes: attributes(3, S_IFLNK | 0o777, size: 9), content: Array("hello.txt".utf8))
        nodes[5] = Node(attributes: attributes(5, S_IFREG | 0o755, size: 0),
                        xattrs: [("user.comment", Array("strata".utf8)), ("security.capability", Self.capability)])
        nodes[6] = Node(attributes: attributes(6, S_IFREG | 0o444, size: Self.blobSize),
                        content: (0..<Self.blobSize).map(Self.blobByte))
        var big = Node(attributes: attributes(4, S_IFDIR | 0o755, nlink: 2))
        for index in 0..<Self.bigCount {
            let inode = UInt64(1000 + index)
            let name = "entry-" + String(repeating: "0", count: 4 - String(index).count) + String(index)
            nodes[inode] = Node(attributes: attributes(inode, S_IFREG | 0o600, size: index))
            big.children.append((Array(name.utf8), inode))
        }
        nodes[4] = big
        var root = Node(attributes: attributes(1, S_IFDIR | 0o755, nlink: 3))
        root.children = [(Array("hello.txt".utf8), 2), (Array("link".utf8), 3), (Array("big".utf8), 4),
                         (Array("xattrs".utf8), 5), (Array("blob".utf8), 6)]
        nodes[1] = root
    }

    private func node(_ inode: UInt64) throws(FSError) -> Node {
        guard let node = nodes[inode] else { throw FSError(ENOENT) }
        return node
    }

    private func counted(_ inode: UInt64, _ delta: Int64) {
        lookups.withLock { $0[inode, default: 0] += delta }
    }

    func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes {
        lookupCalls.withLock { $0 += 1 }
        let directory = try node(parent)
        guard directory.attributes.mode & S_IFMT == S_IFDIR else { throw FSError(ENOTDIR) }
        guard let child = directory.children.first(where: { $0.name.elementsEqual(name) }) else { throw FSError(ENOENT) }
        counted(child.inode, 1)
        return try node(child.inode).attributes
    }

    func forget(inode: UInt64, count: UInt64) { counted(inode, -Int64(count)) }

    func getattr(inode: UInt64) throws(FSError) -> NodeAttributes { try node(inode).attributes }

    func readlink(inode: UInt64) throws(FSError) -> [UInt8] {
        let link = try node(inode)
        guard link.attributes.mode & S_IFMT == S_IFLNK else { throw FSError(EINVAL) }
        return link.content
    }

    func opendir(inode: UInt64) throws(FSError) -> UInt64 {
        guard try node(inode).attributes.mode & S_IFMT == S_IFDIR else { throw FSError(ENOTDIR) }
        openHandles.withLock { $0 += 1 }
        return 77
    }

    func readdir(inode: UInt64, handle: UInt64, offset: UInt64, plus: Bool,
                 add: (UnsafeRawBufferPointer, NodeAttributes, UInt64) -> Bool) throws(FSError) {
        readdirCalls.withLock { if plus { $0.plus += 1 } else { $0.plain += 1 } }
        let directory = try node(inode)
        // Offsets: 0 ".", 1 "..", 2... children; `next` is the entry's index + 1.
        var entries: [([UInt8], NodeAttributes)] = [(Array(".".utf8), directory.attributes),
                                                     (Array("..".utf8), try node(1).attributes)]
        for child in directory.children { entries.append((child.name, try node(child.inode).attributes)) }
        var index = Int(offset)
        while index < entries.count {
            let (name, attributes) = entries[index]
            if plus { counted(attributes.inode, 1) }
            let accepted = name.withUnsafeBytes { add($0, attributes, UInt64(index + 1)) }
            if !accepted {
                if plus { counted(attributes.inode, -1) }  // roll back: the kernel never saw it
                return
            }
            index += 1
        }
    }

    func releasedir(inode: UInt64, handle: UInt64) { openHandles.withLock { $0 -= 1 } }

    func open(inode: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        guard try node(inode).attributes.mode & S_IFMT == S_IFREG else { throw FSError(EISDIR) }
        openHandles.withLock { $0 += 1 }
        return inode &* 10
    }

    func read(inode: UInt64, handle: UInt64, offset: UInt64, size: Int,
              reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        // 0: a zero-message open (read-only mounts), where the kernel sends no OPEN at all.
        guard handle == inode &* 10 || handle == 0 else { throw FSError(EBADF) }
        largestRead.withLock { $0 = max($0, size) }
        let content = try node(inode).content
        let start = min(Int(offset), content.count)
        let end = min(start + size, content.count)
        content.withUnsafeBytes { reply(UnsafeRawBufferPointer(rebasing: $0[start..<end])) }
    }

    func release(inode: UInt64, handle: UInt64) { openHandles.withLock { $0 -= 1 } }

    func statfs(inode: UInt64) throws(FSError) -> FileSystemStatistics {
        FileSystemStatistics(blockSize: 4096, fragmentSize: 4096, blocks: 12345, blocksFree: 0, blocksAvailable: 0,
                             files: UInt64(nodes.count), filesFree: 0, nameMax: 255)
    }

    func getxattr(inode: UInt64, name: String) throws(FSError) -> [UInt8] {
        guard let value = try node(inode).xattrs.first(where: { $0.0 == name }) else { throw FSError(ENODATA) }
        return value.1
    }

    func listxattr(inode: UInt64) throws(FSError) -> [String] { try node(inode).xattrs.map(\.0) }
}
