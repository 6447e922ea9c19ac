import StrataFS
import StrataIndex
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// One layer's own tree (not the union of the image), in the form overlayfs takes as a lower
/// directory: a `.wh.NAME` entry is a character device 0/0 named NAME, a directory holding
/// `.wh..wh..opq` carries `trusted.overlay.opaque=y` and `user.overlay.opaque=y` (the second
/// for `userxattr` mounts), and no `.wh.` name is shown. A whiteout of a name the layer itself
/// holds hides only lower layers' entries: the entry stays (a directory of that name becomes
/// opaque, as the layer replaced the lower one). Built once from the layer's verified index;
/// names, link targets and xattrs stay in the index's mapping, which the tree keeps.
///
/// Paths are walked inside the layer only: a layer is applied to an empty directory, so a
/// symlink in a parent path is not followed (an entry under it is skipped and logged).
// @unchecked: built in init, only read after; IndexEntry views point into `index`'s mapping.
public final class LayerTree: @unchecked Sendable {
    public enum Kind: UInt8, Sendable { case directory, regular, symlink, characterDevice, blockDevice, fifo, whiteout }

    public struct Node {
        public var kind: Kind
        /// The tar entry (for a whiteout, its `.wh.` entry); nil for a directory only implied.
        public var entry: IndexEntry?
        public var opaque = false
        public var nlink: UInt32 = 0
        public var parent: UInt32
    }

    struct Directory {
        var names: [[UInt8]] = []
        var nodes: [UInt32] = []
        var positions: [[UInt8]: Int] = [:]
    }

    public let index: LayerIndex
    public private(set) var nodes: [Node]
    private var directories: [UInt32: Directory] = [:]
    /// Entries left out (a parent that is not a directory, a hardlink to nothing), as log lines.
    public private(set) var skipped: [String] = []

    public static let opaqueXattrs = ["trusted.overlay.opaque", "user.overlay.opaque"]

    public init(index: LayerIndex) {
        self.index = index
        nodes = [Node(kind: .directory, entry: nil, parent: 0)]
        directories[0] = Directory()
        var whiteouts: [IndexEntry] = []
        var opaques: [IndexEntry] = []
        var cursor = index.cursor(from: 0)
        // Entries of a tar come grouped by directory: remember the last one walked.
        var last: (id: UInt32, node: UInt32)?
        for _ in 0..<index.entryCount {
            let e = cursor.next()
            switch e.kind {
            case .whiteout: whiteouts.append(e); continue
            case .opaque: opaques.append(e); continue
            default: break
            }
            if e.name.count == 0 && e.parentPath.count == 0 {
                if e.kind == .directory { nodes[0].entry = e }   // "./": the root's own metadata
                continue
            }
            let dir: UInt32
            if let last, last.id == e.directory, nodes[Int(last.node)].kind == .directory {
                dir = last.node
            } else {
                guard let d = directory(e.parentPath, create: true) else { skip(e, "a parent is not a directory"); continue }
                dir = d
                last = (e.directory, d)
            }
            let name = Array(e.name)
            if e.kind == .hardlink {
                guard let target = resolve(e.linkTarget), nodes[Int(target)].kind != .directory else {
                    skip(e, "hardlink to '\(String(decoding: e.linkTarget, as: UTF8.self))', which this layer does not hold")
                    continue
                }
                put(dir, name, target)
                continue
            }
            if let existing = child(dir, name), e.kind == .directory, nodes[Int(existing)].kind == .directory {
                nodes[Int(existing)].entry = e   // a directory listed twice: the later metadata
                continue
            }
            // A name given again replaces the earlier entry (a replaced directory's subtree goes
            // with it; the walk cache points at this entry's parent, which stays).
            put(dir, name, newNode(Self.kind(e.kind), entry: e, parent: dir))
        }
        for e in opaques {
            let path = e.path
            guard let d = path.withUnsafeBytes({ directory($0, create: true) }) else { skip(e, "opaque marker under a non-directory"); continue }
            nodes[Int(d)].opaque = true
        }
        for e in whiteouts {
            guard let dir = directory(e.parentPath, create: true) else { skip(e, "whiteout under a non-directory"); continue }
            let name = Array(e.name)
            if let existing = child(dir, name) {
                if nodes[Int(existing)].kind == .directory { nodes[Int(existing)].opaque = true }
                continue
            }
            put(dir, name, newNode(.whiteout, entry: e, parent: dir))
        }
        countLinks()
    }

    static func kind(_ k: IndexEntryKind) -> Kind {
        switch k {
        case .directory: .directory
        case .symlink: .symlink
        case .characterDevice: .characterDevice
        case .blockDevice: .blockDevice
        case .fifo: .fifo
        case .regular, .hardlink, .whiteout, .opaque: .regular
        }
    }

    private func skip(_ e: IndexEntry, _ why: String) {
        skipped.append("layer sha256:\(index.digestHex): entry '\(String(decoding: e.path, as: UTF8.self))' left out: \(why)")
    }

    private func newNode(_ kind: Kind, entry: IndexEntry?, parent: UInt32) -> UInt32 {
        let n = UInt32(nodes.count)
        nodes.append(Node(kind: kind, entry: entry, parent: parent))
        if kind == .directory { directories[n] = Directory() }
        return n
    }

    private func put(_ dir: UInt32, _ name: [UInt8], _ node: UInt32) {
        if let position = directories[dir]!.positions[name] {
            directories[dir]!.nodes[position] = node
        } else {
            directories[dir]!.positions[name] = directories[dir]!.names.count
            directories[dir]!.names.append(name)
            directories[dir]!.nodes.append(node)
        }
    }

    private func child(_ dir: UInt32, _ name: [UInt8]) -> UInt32? {
        guard let d = directories[dir], let p = d.positions[name] else { return nil }
        return d.nodes[p]
    }

    /// The directory at `path` (normalised, "" the root), made as implied directories where
    /// missing when `create`; nil when a component is not a directory.
    private func directory(_ path: UnsafeRawBufferPointer, create: Bool) -> UInt32? {
        var current: UInt32 = 0
        for component in path.split(separator: UInt8(ascii: "/")) {
            if component.count == 1 && component.first == UInt8(ascii: ".") { continue }
            if component.count == 2 && component.allSatisfy({ $0 == UInt8(ascii: ".") }) {
                current = nodes[Int(current)].parent
                continue
            }
            let name = Array(component)
            if let existing = child(current, name) {
                guard nodes[Int(existing)].kind == .directory else { return nil }
                current = existing
            } else {
                guard create else { return nil }
                let made = newNode(.directory, entry: nil, parent: current)
                put(current, name, made)
                current = made
            }
        }
        return current
    }

    /// The node at a normalised path, if the layer holds it.
    private func resolve(_ path: UnsafeRawBufferPointer) -> UInt32? {
        let (parent, name) = splitPath(path)
        guard let dir = directory(parent, create: false) else { return nil }
        return child(dir, Array(name))
    }

    /// Link counts over the reachable tree: 2 + subdirectories for a directory, names for others.
    private func countLinks() {
        for i in nodes.indices { nodes[i].nlink = 0 }
        var work: [UInt32] = [0]
        while let dir = work.popLast() {
            var subdirectories: UInt32 = 0
            for child in directories[dir]!.nodes {
                if nodes[Int(child)].kind == .directory {
                    subdirectories += 1
                    nodes[Int(child)].parent = dir
                    work.append(child)
                } else {
                    nodes[Int(child)].nlink += 1
                }
            }
            nodes[Int(dir)].nlink = 2 + subdirectories
        }
    }

    // MARK: Reading

    public var count: Int { nodes.count }

    public func lookup(_ dir: UInt32, _ name: UnsafeRawBufferPointer) -> UInt32? {
        guard nodes[Int(dir)].kind == .directory else { return nil }
        return child(dir, Array(name))
    }

    /// A directory's children in the order the layer lists them.
    public func children(_ dir: UInt32) -> [(name: [UInt8], node: UInt32)] {
        guard let d = directories[dir] else { return [] }
        return Array(zip(d.names, d.nodes))
    }

    public func childCount(_ dir: UInt32) -> Int { directories[dir]?.nodes.count ?? 0 }

    public func child(_ dir: UInt32, at position: Int) -> (name: [UInt8], node: UInt32) {
        let d = directories[dir]!
        return (d.names[position], d.nodes[position])
    }

    /// stat fields of a node (`inode` is the number the mount gives it).
    public func attributes(_ n: UInt32, inode: UInt64) -> NodeAttributes {
        let node = nodes[Int(n)]
        let e = node.entry
        var type: UInt32, size: UInt64 = 0, rdev: UInt64 = 0
        var permissions = (e?.mode ?? 0o755) & 0o7777
        var uid = e?.uid ?? 0, gid = e?.gid ?? 0
        switch node.kind {
        case .directory: type = UInt32(S_IFDIR); size = 4096
        case .regular: type = UInt32(S_IFREG); size = e?.size ?? 0
        case .symlink: type = UInt32(S_IFLNK); size = UInt64(e?.linkTarget.count ?? 0); permissions = IndexEntry.symlinkMode
        case .characterDevice: type = UInt32(S_IFCHR); rdev = DeviceNumber.make(major: e?.devMajor ?? 0, minor: e?.devMinor ?? 0)
        case .blockDevice: type = UInt32(S_IFBLK); rdev = DeviceNumber.make(major: e?.devMajor ?? 0, minor: e?.devMinor ?? 0)
        case .fifo: type = UInt32(S_IFIFO)
        case .whiteout:
            // What overlayfs itself makes for a whiteout: c--------- 0:0, device 0/0.
            type = UInt32(S_IFCHR); permissions = 0; uid = 0; gid = 0
        }
        let time = Timestamp(seconds: e?.mtimeSeconds ?? 0, nanoseconds: e?.mtimeNanoseconds ?? 0)
        return NodeAttributes(inode: inode, mode: type | permissions, nlink: max(node.nlink, 1), uid: uid, gid: gid,
                              size: size, blocks: (size + 511) / 512, rdev: rdev, atime: time, mtime: time, ctime: time)
    }

    public func symlinkTarget(_ n: UInt32) -> [UInt8]? {
        let node = nodes[Int(n)]
        guard node.kind == .symlink, let e = node.entry else { return nil }
        return Array(e.linkTarget)
    }

    /// The node's xattrs: the layer's own (except overlayfs's namespaces, which only the store
    /// sets: a layer must not steer the kernel's overlay), then the opaque markers.
    public func xattrs(_ n: UInt32) -> [(name: String, value: [UInt8])] {
        let node = nodes[Int(n)]
        var out: [(name: String, value: [UInt8])] = []
        if let e = node.entry, node.kind != .whiteout {
            for i in 0..<Int(e.xattrCount) {
                let x = index.xattr(Int(e.xattrFirst) + i)
                let name = String(decoding: x.name, as: UTF8.self)
                if name.hasPrefix("trusted.overlay.") || name.hasPrefix("user.overlay.") { continue }
                out.append((name, Array(x.value)))
            }
        }
        if node.opaque { for name in Self.opaqueXattrs { out.append((name, [UInt8(ascii: "y")])) } }
        return out
    }

    /// Copies the bytes [offset, offset + count) of regular node `n` (clamped by the caller)
    /// through `layer`; sparse files' holes read as zeros.
    public func read(_ n: UInt32, layer: LayerData, offset: UInt64, count: Int, reply: (UnsafeRawBufferPointer) -> Void) throws {
        guard let e = nodes[Int(n)].entry else { reply(UnsafeRawBufferPointer(start: nil, count: 0)); return }
        guard e.isSparse else {
            try layer.read(offset: e.dataOffset + offset, count: count, reply: reply)
            return
        }
        var buffer = [UInt8](repeating: 0, count: count)
        let end = offset + UInt64(count)
        var stored = e.dataOffset
        for i in 0..<Int(e.sparseCount) {
            let segment = index.sparseSegment(Int(e.sparseFirst) + i)
            defer { stored += segment.length }
            let segmentEnd = segment.offset + segment.length
            if segmentEnd <= offset || segment.offset >= end { continue }
            let from = max(offset, segment.offset), to = min(end, segmentEnd)
            try buffer.withUnsafeMutableBytes { b in
                try layer.copy(offset: stored + (from - segment.offset),
                               into: UnsafeMutableRawBufferPointer(rebasing: b[Int(from - offset)..<Int(to - offset)]))
            }
        }
        buffer.withUnsafeBytes { reply($0) }
    }
}
