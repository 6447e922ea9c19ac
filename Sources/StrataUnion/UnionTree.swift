import StrataIndex

public struct UnionError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// The merged view of an image's layers (image-spec layer.md): an immutable tree of inodes built
/// once at mount from the mapped layer indexes. Names and metadata stay in the mappings; the tree
/// holds only small records, so memory is a few dozen bytes per entry.
///
/// Inode 0 is the root. A directory inode has exactly one name; a file inode may have several
/// (hardlinks), and `nlink` counts the names that are reachable in the final view.
public final class UnionTree: @unchecked Sendable {
    public struct Source: Equatable, Sendable {
        public var layer: UInt16
        public var entry: UInt32           // `Source.implied` for directories no entry lists
        public static let implied = UInt32.max
    }

    public struct Child {
        public var name: UnsafeRawBufferPointer
        public var inode: UInt32
    }

    public let layers: [LayerIndex]
    public private(set) var sources: [Source] = []
    public private(set) var isDirectory: [Bool] = []
    public private(set) var nlink: [UInt32] = []
    /// For a directory inode, the inode of its parent (the root is its own parent).
    public private(set) var parent: [UInt32] = []
    /// Children of each directory inode, in the order they first appeared; empty for others.
    public private(set) var children: [[Child]] = []
    private var table: [ChildKey: Slot] = [:]

    struct Slot { var inode: UInt32; var index: UInt32 }

    public var inodeCount: Int { sources.count }

    /// Builds the view of `layers`, bottom layer first.
    public init(layers: [LayerIndex]) throws {
        self.layers = layers
        let total = layers.reduce(0) { $0 + $1.entryCount }
        table.reserveCapacity(total + 16)
        sources.reserveCapacity(total + 16)
        _ = newInode(Source(layer: 0, entry: Source.implied), directory: true, parent: 0)
        for (number, layer) in layers.enumerated() {
            try apply(layer: layer, number: number)
        }
        finish()
    }

    // MARK: Lookup (after build)

    /// The inode named `name` in directory `directory`, if any.
    @inline(__always)
    public func lookup(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> UInt32? {
        table[ChildKey(directory: directory, name: name)]?.inode
    }

    public func entry(of inode: UInt32) -> IndexEntry? {
        let s = sources[Int(inode)]
        if s.entry == Source.implied { return nil }
        return layers[Int(s.layer)].entry(Int(s.entry))
    }

    // MARK: Build

    private func newInode(_ source: Source, directory: Bool, parent: UInt32) -> UInt32 {
        let inode = UInt32(sources.count)
        sources.append(source)
        isDirectory.append(directory)
        nlink.append(0)
        self.parent.append(parent)
        children.append([])
        return inode
    }

    private func link(_ directory: UInt32, _ name: UnsafeRawBufferPointer, _ inode: UInt32) {
        let index = UInt32(children[Int(directory)].count)
        children[Int(directory)].append(Child(name: name, inode: inode))
        table[ChildKey(directory: directory, name: name)] = Slot(inode: inode, index: index)
    }

    private func apply(layer: LayerIndex, number: Int) throws {
        let layerName = "layer \(number) (sha256:\(layer.digestHex))"
        // Whiteouts hide only what lower layers hold, whatever their place in the tar: apply them
        // all before any entry of this layer.
        for i in 0..<layer.entryCount {
            let kind = layer.kind(i)
            guard kind == .whiteout || kind == .opaque else { continue }
            let e = layer.entry(i)
            if kind == .whiteout {
                guard let dir = try resolveDirectory(e.parentPath, create: false, layerName: layerName, entryPath: e.path) else { continue }
                table[ChildKey(directory: dir, name: e.name)] = nil
            } else {
                guard let dir = try resolveDirectory(e.path, create: false, layerName: layerName, entryPath: e.path) else { continue }
                for child in children[Int(dir)] {
                    table[ChildKey(directory: dir, name: child.name)] = nil
                }
                children[Int(dir)].removeAll(keepingCapacity: true)
            }
        }
        for i in 0..<layer.entryCount {
            let kind = layer.kind(i)
            if kind == .whiteout || kind == .opaque { continue }
            let e = layer.entry(i)
            let source = Source(layer: UInt16(number), entry: UInt32(i))
            if e.path.count == 0 {
                sources[0] = source   // "./": the root's own metadata
                continue
            }
            guard let dir = try resolveDirectory(e.parentPath, create: true, layerName: layerName, entryPath: e.path) else { continue }
            let name = e.name
            let existing = table[ChildKey(directory: dir, name: name)]
            if kind == .directory, let existing, isDirectory[Int(existing.inode)] {
                sources[Int(existing.inode)] = source   // dir over dir: merge, upper metadata
                continue
            }
            if kind == .hardlink {
                let target = try resolveHardlink(e.linkTarget, layerName: layerName, entryPath: e.path)
                if let existing, existing.inode == target { continue }   // a link onto itself
                link(dir, name, target)
                continue
            }
            let inode = newInode(source, directory: kind == .directory, parent: dir)
            link(dir, name, inode)
        }
    }

    private static let maxSymlinkHops = 40

    /// Walks a directory path from the root the way an extractor does (securejoin): symlinks in
    /// the path are followed and kept inside the root; with `create`, missing directories are made
    /// as implied ones (0755, 0:0). nil when a component is missing and `create` is false.
    private func resolveDirectory(_ path: UnsafeRawBufferPointer, create: Bool, layerName: String,
                                  entryPath: UnsafeRawBufferPointer) throws -> UInt32? {
        var stack: [UInt32] = [0]
        var hops = 0
        // Components still to walk, last first. They are slices of mapped bytes (the entry's path
        // or a symlink's target), so an implied directory can borrow its name from them.
        var pending: [UnsafeRawBufferPointer] = []
        func push(_ bytes: UnsafeRawBufferPointer) {
            var end = bytes.count
            var i = bytes.count - 1
            while i >= -1 {
                if i == -1 || bytes[i] == UInt8(ascii: "/") {
                    if end > i + 1 { pending.append(UnsafeRawBufferPointer(rebasing: bytes[(i + 1)..<end])) }
                    end = i
                }
                i -= 1
            }
        }
        push(path)
        while let comp = pending.popLast() {
            if comp.count == 1 && comp[0] == UInt8(ascii: ".") { continue }
            if comp.count == 2 && comp[0] == UInt8(ascii: ".") && comp[1] == UInt8(ascii: ".") {
                if stack.count > 1 { stack.removeLast() }
                continue
            }
            let dir = stack.last!
            guard let inode = lookup(dir, comp) else {
                guard create else { return nil }
                let created = newInode(Source(layer: 0, entry: Source.implied), directory: true, parent: dir)
                link(dir, comp, created)
                stack.append(created)
                continue
            }
            if isDirectory[Int(inode)] { stack.append(inode); continue }
            if let e = entry(of: inode), e.kind == .symlink {
                hops += 1
                if hops > UnionTree.maxSymlinkHops {
                    throw UnionError("\(layerName): entry '\(Self.text(entryPath))': too many levels of symbolic links")
                }
                if e.linkTarget.first == UInt8(ascii: "/") { stack = [0] }
                push(e.linkTarget)
                continue
            }
            if !create { return nil }
            throw UnionError("\(layerName): entry '\(Self.text(entryPath))': a parent component is not a directory")
        }
        return stack.last!
    }

    private func resolveHardlink(_ target: UnsafeRawBufferPointer, layerName: String,
                                 entryPath: UnsafeRawBufferPointer) throws -> UInt32 {
        var slash = target.count - 1
        while slash >= 0 && target[slash] != UInt8(ascii: "/") { slash -= 1 }
        let parentPath = UnsafeRawBufferPointer(rebasing: target[0..<max(slash, 0)])
        let name = UnsafeRawBufferPointer(rebasing: target[(slash + 1)...])
        guard let dir = try resolveDirectory(parentPath, create: false, layerName: layerName, entryPath: entryPath),
              let inode = lookup(dir, name) else {
            throw UnionError("\(layerName): hardlink '\(Self.text(entryPath))' points at '\(Self.text(target))', which does not exist")
        }
        if isDirectory[Int(inode)] {
            throw UnionError("\(layerName): hardlink '\(Self.text(entryPath))' points at directory '\(Self.text(target))'")
        }
        return inode
    }

    /// Drops names that were hidden or replaced, and counts links over the reachable tree.
    private func finish() {
        var stack: [UInt32] = [0]
        while let dir = stack.popLast() {
            var live: [Child] = []
            live.reserveCapacity(children[Int(dir)].count)
            var subdirectories: UInt32 = 0
            for (i, child) in children[Int(dir)].enumerated() {
                guard let slot = table[ChildKey(directory: dir, name: child.name)], slot.index == UInt32(i) else { continue }
                live.append(child)
                if isDirectory[Int(child.inode)] {
                    subdirectories += 1
                    parent[Int(child.inode)] = dir
                    stack.append(child.inode)
                } else {
                    nlink[Int(child.inode)] += 1
                }
            }
            // Slots now index the compacted list; lookups only use `inode`.
            children[Int(dir)] = live
            nlink[Int(dir)] = 2 + subdirectories
        }
    }

    static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
}

/// A (directory inode, name) pair; the name's bytes live in a mapped index or a live request.
struct ChildKey: Hashable {
    var directory: UInt32
    var name: UnsafeRawBufferPointer

    static func == (a: ChildKey, b: ChildKey) -> Bool {
        guard a.directory == b.directory, a.name.count == b.name.count else { return false }
        if a.name.count == 0 { return true }
        return memcmp(a.name.baseAddress!, b.name.baseAddress!, a.name.count) == 0
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(directory)
        hasher.combine(bytes: name)
    }
}

#if canImport(Glibc)
import Glibc
#endif
