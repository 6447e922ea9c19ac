import StrataFS
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// podman's Additional Layer Store (containers/storage 1.43, overlay driver, `:ref` stores) as
/// a FUSE-shaped core:
///
///     /                                  the references looked up so far
///     /<base64 of REF>/                  REF = HOST[:PORT]/REPO[:TAG][@DIGEST], as c/image names it
///     /<base64 of REF>/<layer digest>/   a layer of REF's image
///         diff                           the layer's own tree, overlayfs whiteouts (`LayerTree`)
///         info                           `LayerInfo` JSON
///         blob                           the raw blob
///
/// Nothing is fetched until a layer directory is looked up (the manifest and config, to know
/// the layer), and its index only when `diff`, `info` or `blob` is. c/storage signals use and
/// release through two calls that must fail with ENOENT: `open(O_CREAT)` of `<layer>/use`
/// ("acquire", at lookup and when a layer is committed) and `rmdir(<layer>)` ("release"); the
/// counts are logged. An unknown reference or digest, or a name that is not one, is ENOENT;
/// a registry that cannot be reached is EIO (logged), never a hang beyond the client's
/// timeouts. Everything else that would write is EROFS.
///
/// Node numbers: 1 the root; a reference directory `2 + r`; a layer directory's things
/// `slot << 32 | local` (0 the directory, 1 info, 2 blob, 3 + n node n of `diff`). Each
/// (reference, layer) pair has its own slot, so a directory never has two parents even when
/// images share a layer (the opened layer itself is shared).
public final class StoreFileSystem: WritableFileSystem, Sendable {
    public let source: any LayerSource
    let spans: SpanCache

    struct Slot {
        var reference: Int
        var layer: StoreLayer
        var uses = 0
    }

    struct State {
        var references: [RegistryReference] = []
        var referenceNames: [[UInt8]] = []
        var referenceNumbers: [RegistryReference: Int] = [:]
        var slots: [Slot] = [Slot(reference: -1, layer: StoreLayer(digest: StoreFileSystem.placeholder, size: 0,
                                                                     diffID: StoreFileSystem.placeholder, compression: .none))]
        var slotNumbers: [SlotKey: UInt32] = [:]
        var opened: [String: OpenedLayer] = [:]
    }

    struct SlotKey: Hashable { var reference: Int; var digest: Digest }

    static let placeholder = Digest.sha256(of: [])
    let state = Locked(State())
    /// Opening a layer may fetch and index it: one at a time, outside `state`.
    private let opening = Lock()
    private let started = Timestamp(seconds: Int64(time(nil)), nanoseconds: 0)

    static let root: UInt64 = 1
    static let localDirectory: UInt64 = 0, localInfo: UInt64 = 1, localBlob: UInt64 = 2, localDiff: UInt64 = 3
    static let layerNames: [[UInt8]] = [Array("diff".utf8), Array("info".utf8), Array("blob".utf8)]

    public init(source: any LayerSource, spanCacheBytes: Int = 16 << 20) {
        self.source = source
        spans = SpanCache(capacity: spanCacheBytes)
    }

    // MARK: Nodes

    enum Node {
        case root
        case reference(Int)
        case layerDirectory(UInt32)
        case info(UInt32)
        case blob(UInt32)
        case diff(UInt32, UInt32)
    }

    func node(_ inode: UInt64) throws(FSError) -> Node {
        if inode == Self.root { return .root }
        let slot = UInt32(truncatingIfNeeded: inode >> 32), local = inode & 0xffff_ffff
        if slot == 0 {
            let r = Int(local) - 2
            guard r >= 0, r < state.withLock({ $0.references.count }) else { throw FSError(ESTALE) }
            return .reference(r)
        }
        guard Int(slot) < state.withLock({ $0.slots.count }) else { throw FSError(ESTALE) }
        switch local {
        case Self.localDirectory: return .layerDirectory(slot)
        case Self.localInfo: return .info(slot)
        case Self.localBlob: return .blob(slot)
        default: return .diff(slot, UInt32(local - Self.localDiff))
        }
    }

    static func inode(slot: UInt32, local: UInt64) -> UInt64 { UInt64(slot) << 32 | local }
    static func referenceInode(_ r: Int) -> UInt64 { UInt64(2 + r) }

    private func slotState(_ slot: UInt32) -> Slot { state.withLock { $0.slots[Int(slot)] } }

    private func reference(ofSlot slot: UInt32) -> RegistryReference {
        state.withLock { $0.references[$0.slots[Int(slot)].reference] }
    }

    /// The slot's layer opened (found or built: may fetch), shared by every slot of the digest.
    public func opened(_ slot: UInt32) throws(FSError) -> OpenedLayer {
        let s = slotState(slot)
        let key = s.layer.digest.hex
        if let o = state.withLock({ $0.opened[key] }) { return o }
        let reference = reference(ofSlot: slot)
        do {
            return try opening.withLock {
                if let o = state.withLock({ $0.opened[key] }) { return o }
                let o = try source.open(reference: reference, layer: s.layer, spans: spans)
                for line in o.tree.skipped { Log.warn(line) }
                state.withLock { $0.opened[key] = o }
                return o
            }
        } catch {
            Log.error("EIO: \(reference) layer \(s.layer.digest): \(error)")
            throw FSError(EIO)
        }
    }

    /// The opened layer of a `diff` node, the node checked against its tree.
    private func diffLayer(_ slot: UInt32, _ n: UInt32) throws(FSError) -> OpenedLayer {
        let o = try opened(slot)
        guard Int(n) < o.tree.count else { throw FSError(ESTALE) }
        return o
    }

    private func directoryAttributes(_ inode: UInt64, nlink: UInt32 = 2) -> NodeAttributes {
        NodeAttributes(inode: inode, mode: UInt32(S_IFDIR) | 0o555, nlink: nlink, uid: 0, gid: 0, size: 4096, blocks: 8,
                       rdev: 0, atime: started, mtime: started, ctime: started)
    }

    private func fileAttributes(_ inode: UInt64, size: UInt64) -> NodeAttributes {
        NodeAttributes(inode: inode, mode: UInt32(S_IFREG) | 0o444, nlink: 1, uid: 0, gid: 0, size: size,
                       blocks: (size + 511) / 512, rdev: 0, atime: started, mtime: started, ctime: started)
    }

    private func attributes(_ n: Node, inode: UInt64) throws(FSError) -> NodeAttributes {
        switch n {
        case .root, .reference, .layerDirectory: return directoryAttributes(inode)
        case .info(let slot): return fileAttributes(inode, size: UInt64(try opened(slot).infoBytes.count))
        case .blob(let slot): return fileAttributes(inode, size: slotState(slot).layer.size)
        case .diff(let slot, let n):
            return try diffLayer(slot, n).tree.attributes(n, inode: inode)
        }
    }

    // MARK: FileSystem

    public func lookup(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes {
        switch try node(parent) {
        case .root:
            let bytes = Array(name)
            guard let reference = StoreName.reference(bytes) else { throw FSError(ENOENT) }
            let r = state.withLock { s in
                if let r = s.referenceNumbers[reference] { return r }
                s.references.append(reference)
                s.referenceNames.append(bytes)
                s.referenceNumbers[reference] = s.references.count - 1
                return s.references.count - 1
            }
            return directoryAttributes(Self.referenceInode(r))
        case .reference(let r):
            guard let digest = StoreName.digest(Array(name)) else { throw FSError(ENOENT) }
            let reference = state.withLock { $0.references[r] }
            if let slot = state.withLock({ $0.slotNumbers[SlotKey(reference: r, digest: digest)] }) {
                return directoryAttributes(Self.inode(slot: slot, local: Self.localDirectory))
            }
            let layer: StoreLayer?
            do { layer = try source.layer(reference: reference, digest: digest) } catch {
                Log.error("EIO: \(reference) layer \(digest): \(error)")
                throw FSError(EIO)
            }
            guard let layer else { throw FSError(ENOENT) }
            let slot = state.withLock { s in
                let key = SlotKey(reference: r, digest: digest)
                if let slot = s.slotNumbers[key] { return slot }
                s.slots.append(Slot(reference: r, layer: layer))
                s.slotNumbers[key] = UInt32(s.slots.count - 1)
                return UInt32(s.slots.count - 1)
            }
            return directoryAttributes(Self.inode(slot: slot, local: Self.localDirectory))
        case .layerDirectory(let slot):
            guard let i = Self.layerNames.firstIndex(where: { $0.elementsEqual(name) }) else { throw FSError(ENOENT) }
            let local = [Self.localDiff, Self.localInfo, Self.localBlob][i]
            let inode = Self.inode(slot: slot, local: local)
            return try attributes(local == Self.localDiff ? .diff(slot, 0) : local == Self.localInfo ? .info(slot) : .blob(slot), inode: inode)
        case .diff(let slot, let n):
            let o = try diffLayer(slot, n)
            guard o.tree.nodes[Int(n)].kind == .directory else { throw FSError(ENOTDIR) }
            guard let child = o.tree.lookup(n, name) else { throw FSError(ENOENT) }
            return o.tree.attributes(child, inode: Self.inode(slot: slot, local: Self.localDiff + UInt64(child)))
        case .info, .blob:
            throw FSError(ENOTDIR)
        }
    }

    // Nodes live as long as the mount (a few per layer, and the layers' trees): nothing to forget.
    public func forget(inode: UInt64, count: UInt64) {}

    public func getattr(inode: UInt64) throws(FSError) -> NodeAttributes {
        try attributes(try node(inode), inode: inode)
    }

    public func readlink(inode: UInt64) throws(FSError) -> [UInt8] {
        guard case .diff(let slot, let n) = try node(inode), let target = try diffLayer(slot, n).tree.symlinkTarget(n) else {
            throw FSError(EINVAL)
        }
        return target
    }

    public func opendir(inode: UInt64) throws(FSError) -> UInt64 {
        switch try node(inode) {
        case .info, .blob: throw FSError(ENOTDIR)
        case .diff(let slot, let n): guard try diffLayer(slot, n).tree.nodes[Int(n)].kind == .directory else { throw FSError(ENOTDIR) }
        default: break
        }
        return 0
    }

    private static let dot: [UInt8] = [UInt8(ascii: ".")]
    private static let dotdot: [UInt8] = [UInt8(ascii: "."), UInt8(ascii: ".")]

    public func readdir(inode: UInt64, handle: UInt64, offset: UInt64, plus: Bool,
                        add: (UnsafeRawBufferPointer, NodeAttributes, UInt64) -> Bool) throws(FSError) {
        let n = try node(inode)
        // (name, inode) of every entry after "." and "..".
        var entries: [([UInt8], UInt64)] = []
        var parent = Self.root
        var diff: (slot: UInt32, node: UInt32, layer: OpenedLayer)?
        switch n {
        case .root:
            entries = state.withLock { s in s.referenceNames.enumerated().map { ($0.element, Self.referenceInode($0.offset)) } }
        case .reference(let r):
            entries = state.withLock { s in
                s.slotNumbers.filter { $0.key.reference == r }.sorted { $0.value < $1.value }
                    .map { (Array($0.key.digest.description.utf8), Self.inode(slot: $0.value, local: Self.localDirectory)) }
            }
        case .layerDirectory(let slot):
            parent = Self.referenceInode(slotState(slot).reference)
            entries = [(Self.layerNames[0], Self.inode(slot: slot, local: Self.localDiff)),
                       (Self.layerNames[1], Self.inode(slot: slot, local: Self.localInfo)),
                       (Self.layerNames[2], Self.inode(slot: slot, local: Self.localBlob))]
        case .diff(let slot, let node):
            let o = try diffLayer(slot, node)
            guard o.tree.nodes[Int(node)].kind == .directory else { throw FSError(ENOTDIR) }
            diff = (slot, node, o)
            parent = node == 0 ? Self.inode(slot: slot, local: Self.localDirectory)
                               : Self.inode(slot: slot, local: Self.localDiff + UInt64(o.tree.nodes[Int(node)].parent))
        case .info, .blob:
            throw FSError(ENOTDIR)
        }
        var position = offset
        if position == 0 {
            guard Self.dot.withUnsafeBytes({ add($0, (try? attributes(n, inode: inode)) ?? directoryAttributes(inode), 1) }) else { return }
            position = 1
        }
        if position == 1 {
            let attributes = (try? getattr(inode: parent)) ?? directoryAttributes(parent)
            guard Self.dotdot.withUnsafeBytes({ add($0, attributes, 2) }) else { return }
            position = 2
        }
        if let diff {
            let tree = diff.layer.tree
            while Int(position - 2) < tree.childCount(diff.node) {
                let child = tree.child(diff.node, at: Int(position - 2))
                let attributes = tree.attributes(child.node, inode: Self.inode(slot: diff.slot, local: Self.localDiff + UInt64(child.node)))
                guard child.name.withUnsafeBytes({ add($0, attributes, position + 1) }) else { return }
                position += 1
            }
            return
        }
        while Int(position - 2) < entries.count {
            let (name, child) = entries[Int(position - 2)]
            // Listing never fetches: a layer's files show their attributes once looked up.
            let attributes = (try? node(child)).flatMap { n -> NodeAttributes? in
                switch n {
                case .info, .diff: return nil
                default: return try? self.attributes(n, inode: child)
                }
            } ?? directoryAttributes(child)
            guard name.withUnsafeBytes({ add($0, attributes, position + 1) }) else { return }
            position += 1
        }
    }

    public func releasedir(inode: UInt64, handle: UInt64) {}

    public func open(inode: UInt64, flags: Int32) throws(FSError) -> UInt64 {
        switch try node(inode) {
        case .root, .reference, .layerDirectory: throw FSError(EISDIR)
        case .diff(let slot, let n):
            let kind = try diffLayer(slot, n).tree.nodes[Int(n)].kind
            if kind == .directory { throw FSError(EISDIR) }
        case .info, .blob: break
        }
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 { throw FSError(EROFS) }
        return 0
    }

    public func read(inode: UInt64, handle: UInt64, offset: UInt64, size: Int,
                     reply: (UnsafeRawBufferPointer) -> Void) throws(FSError) {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        switch try node(inode) {
        case .info(let slot):
            let bytes = try opened(slot).infoBytes
            guard offset < UInt64(bytes.count), size > 0 else { reply(empty); return }
            let end = min(bytes.count, Int(offset) + size)
            bytes[Int(offset)..<end].withUnsafeBytes { reply($0) }
        case .blob(let slot):
            let o = try opened(slot)
            guard offset < o.layer.size, size > 0 else { reply(empty); return }
            let count = Int(min(UInt64(size), o.layer.size - offset))
            do {
                try o.blob.read(offset: offset, count: count).withUnsafeBytes { reply($0) }
            } catch {
                Log.error("EIO: layer \(o.layer.digest): blob: read of \(count) bytes at offset \(offset): \(error)")
                throw FSError(EIO)
            }
        case .diff(let slot, let n):
            let o = try diffLayer(slot, n)
            let tree = o.tree
            guard tree.nodes[Int(n)].kind == .regular else { throw FSError(EISDIR) }
            let fileSize = tree.nodes[Int(n)].entry?.size ?? 0
            guard offset < fileSize, size > 0 else { reply(empty); return }
            let count = Int(min(UInt64(size), fileSize - offset))
            do {
                try tree.read(n, layer: o.data, offset: offset, count: count, reply: reply)
            } catch {
                let path = String(decoding: tree.nodes[Int(n)].entry?.path ?? [], as: UTF8.self)
                Log.error("EIO: layer \(o.layer.digest): /\(path): read of \(count) bytes at offset \(offset): \(error)")
                throw FSError(EIO)
            }
        default:
            throw FSError(EISDIR)
        }
    }

    public func release(inode: UInt64, handle: UInt64) {}

    public func statfs(inode: UInt64) throws(FSError) -> FileSystemStatistics {
        FileSystemStatistics(blockSize: 4096, fragmentSize: 4096, blocks: 0, blocksFree: 0, blocksAvailable: 0,
                             files: 0, filesFree: 0, nameMax: 255)
    }

    public func getxattr(inode: UInt64, name: String) throws(FSError) -> [UInt8] {
        guard case .diff(let slot, let n) = try node(inode) else { throw FSError(ENODATA) }
        guard let x = try diffLayer(slot, n).tree.xattrs(n).first(where: { $0.name == name }) else { throw FSError(ENODATA) }
        return x.value
    }

    public func listxattr(inode: UInt64) throws(FSError) -> [String] {
        guard case .diff(let slot, let n) = try node(inode) else { return [] }
        return try diffLayer(slot, n).tree.xattrs(n).map(\.name)
    }
}
