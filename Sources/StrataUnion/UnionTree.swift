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
// @unchecked: built in init and never changed after; names point into the indexes it keeps.
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

    /// A directory's children, read through the child table (slots, not copies).
    public struct ChildList: RandomAccessCollection {
        let table: ChildTable
        let slots: [UInt32]
        public var startIndex: Int { 0 }
        public var endIndex: Int { slots.count }
        public subscript(i: Int) -> Child {
            let s = Int(slots[i])
            return Child(name: table.name(s), inode: table.inode(s))
        }
    }

    /// Children of each directory inode, in the order they first appeared; empty for others.
    public struct Children {
        let tree: UnionTree
        public subscript(inode: Int) -> ChildList {
            let d = tree.directoryNumber[inode]
            return ChildList(table: tree.table, slots: d == UnionTree.notDirectory ? [] : tree.lists[Int(d)])
        }
    }

    /// Whether each inode is a directory, read like an array.
    public struct DirectoryFlags {
        let tree: UnionTree
        public subscript(inode: Int) -> Bool { tree.directoryNumber[inode] != UnionTree.notDirectory }
    }

    /// For a directory inode, the inode of its parent (the root is its own parent); 0 for others.
    public struct Parents {
        let tree: UnionTree
        public subscript(inode: Int) -> UInt32 {
            let d = tree.directoryNumber[inode]
            return d == UnionTree.notDirectory ? 0 : tree.parents[Int(d)]
        }
    }

    public let layers: [LayerIndex]
    public private(set) var sources: [Source] = []
    public private(set) var nlink: [UInt32] = []
    /// The group of each implied directory made inside a set-group-ID directory: an extractor's
    /// mkdir there gets the parent's group and the set-group-ID bit (the kernel's rule), and so
    /// do umoci's and containerd's trees. Few or none in most images.
    public private(set) var impliedGroups: [UInt32: UInt32] = [:]
    // Per inode only what every inode needs (16 bytes); a directory's list and parent are kept
    // by its number among directories, which are few.
    private static let notDirectory = UInt32.max
    private var directoryNumber: [UInt32] = []
    private var lists: [[UInt32]] = []
    private var parents: [UInt32] = []
    private let table: ChildTable
    public var children: Children { Children(tree: self) }
    public var isDirectory: DirectoryFlags { DirectoryFlags(tree: self) }
    public var parent: Parents { Parents(tree: self) }
    // Reused by resolveDirectory so that walking a path allocates nothing.
    private var pending: [UnsafeRawBufferPointer] = []
    private var stack: [UInt32] = []

    public var inodeCount: Int { sources.count }

    /// Builds the view of `layers`, bottom layer first.
    public init(layers: [LayerIndex]) throws {
        self.layers = layers
        let total = layers.reduce(0) { $0 + $1.entryCount }
        table = ChildTable(expected: total + total / 16 + 16)
        sources.reserveCapacity(total + 16)
        nlink.reserveCapacity(total + 16)
        directoryNumber.reserveCapacity(total + 16)
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
        guard let s = table.find(directory, name), table.position(s) != ChildTable.dead else { return nil }
        return table.inode(s)
    }

    /// Hides a name (whiteout, replacement): its slot stays, marked dead.
    private func unlink(_ directory: UInt32, _ name: UnsafeRawBufferPointer) {
        if let s = table.find(directory, name) { table.setPosition(s, ChildTable.dead) }
    }

    public func entry(of inode: UInt32) -> IndexEntry? {
        let s = sources[Int(inode)]
        if s.entry == Source.implied { return nil }
        return layers[Int(s.layer)].entry(Int(s.entry))
    }

    /// Reads inodes' entries through one cursor per layer: entries asked for in about tar order
    /// (the children of a directory) are decoded once each, not each from its restart.
    public struct EntryReader {
        let tree: UnionTree
        var cursors: [EntryCursor?]
        /// How many entries were read out of order (each from its restart).
        public private(set) var jumps = 0
        init(_ tree: UnionTree) { self.tree = tree; cursors = Array(repeating: nil, count: tree.layers.count) }

        public mutating func entry(of inode: UInt32) -> IndexEntry? {
            let s = tree.sources[Int(inode)]
            if s.entry == Source.implied { return nil }
            let l = Int(s.layer), i = Int(s.entry)
            if cursors[l]?.skip(to: i) != true {
                cursors[l] = tree.layers[l].cursor(from: i)
                jumps += 1
            }
            return cursors[l]!.next()
        }
    }

    public func entryReader() -> EntryReader { EntryReader(self) }

    /// Frees the lookup table's slots (what writing the tree does first, to hold less): later
    /// lookups scan.
    public func dropLookupSlots() { table.dropSlots() }

    // MARK: Build

    private func newInode(_ source: Source, directory: Bool, parent: UInt32) -> UInt32 {
        let inode = UInt32(sources.count)
        sources.append(source)
        nlink.append(0)
        if directory {
            directoryNumber.append(UInt32(lists.count))
            lists.append([])
            parents.append(parent)
        } else {
            directoryNumber.append(UnionTree.notDirectory)
        }
        return inode
    }

    @inline(__always) private func isDirectoryInode(_ inode: UInt32) -> Bool { directoryNumber[Int(inode)] != UnionTree.notDirectory }
    /// The list index of a directory inode.
    @inline(__always) private func listOf(_ directory: UInt32) -> Int { Int(directoryNumber[Int(directory)]) }

    private func link(_ directory: UInt32, _ name: UnsafeRawBufferPointer, _ inode: UInt32) {
        link(directory, slot: reserve(directory, name), inode)
    }

    /// The table record for a name in a directory, created (dead) if new.
    @inline(__always) private func reserve(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int {
        table.slot(directory, name)
    }

    private func link(_ directory: UInt32, slot s: Int, _ inode: UInt32) {
        let l = listOf(directory)
        table.set(s, inode: inode, position: UInt32(lists[l].count))
        lists[l].append(UInt32(s))
    }

    private func apply(layer: LayerIndex, number: Int) throws {
        let layerName = "layer \(number) (sha256:\(layer.digestHex))"
        // Whiteouts hide only what lower layers hold, whatever their place in the tar: apply them
        // all before any entry of this layer.
        var cursor = layer.cursor(from: 0)
        var scratch: [UInt8] = []
        // Each pass reads the records in order: their pages are dropped behind it (names the
        // table points at come back from the page cache when compared or written).
        var released = 0
        func release(_ position: Int) {
            if position - released >= 8 << 20 {
                layer.releaseEntries(released..<position)
                released = position
            }
        }
        for _ in 0..<layer.entryCount {
            release(cursor.streamPosition)
            let e = cursor.next()
            guard e.kind == .whiteout || e.kind == .opaque else { continue }
            if e.kind == .whiteout {
                guard let dir = try resolveDirectory(e.parentPath, create: false, layerName: layerName, entryPath: e) else { continue }
                unlink(dir, e.name)
            } else {
                // The opaque directory's own path; resolving it without `create` keeps no name.
                scratch = e.path
                let dir = try scratch.withUnsafeBytes { try resolveDirectory($0, create: false, layerName: layerName, entryPath: e) }
                guard let dir else { continue }
                for s in lists[listOf(dir)] { table.setPosition(Int(s), ChildTable.dead) }
                lists[listOf(dir)].removeAll(keepingCapacity: true)
            }
        }
        // Entries of a tar come grouped by directory: remember the last directory walked.
        // Replacing an existing name may cut that path, so it forgets it.
        var lastParent = UInt32.max
        var lastDirectory: UInt32? = nil
        layer.releaseEntries(released..<cursor.streamPosition)
        released = 0
        cursor = layer.cursor(from: 0)
        for i in 0..<layer.entryCount {
            release(cursor.streamPosition)
            let e = cursor.next()
            let kind = e.kind
            if kind == .whiteout || kind == .opaque { continue }
            let source = Source(layer: UInt16(number), entry: UInt32(i))
            if e.name.count == 0 && e.parentPath.count == 0 {
                sources[0] = source   // "./": the root's own metadata
                continue
            }
            let dir: UInt32
            if let cached = lastDirectory, cached != UInt32.max, e.directory == lastParent {
                dir = cached
            } else {
                guard let resolved = try resolveDirectory(e.parentPath, create: true, layerName: layerName, entryPath: e) else { continue }
                dir = resolved
                lastParent = e.directory
                lastDirectory = resolved
            }
            // One probe of the table per entry: the slot is found or reserved once.
            let slot = reserve(dir, e.name)
            let existing: UInt32? = table.position(slot) != ChildTable.dead ? table.inode(slot) : nil
            if kind == .directory, let existing, isDirectoryInode(existing) {
                sources[Int(existing)] = source   // dir over dir: merge, upper metadata
                continue
            }
            if existing != nil { lastDirectory = nil }
            if kind == .hardlink {
                let (targetDirectory, target) = try resolveHardlink(e.linkTarget, layerName: layerName, entryPath: e)
                if let existing, existing == target { continue }   // a link onto itself
                // An extractor removes the directory a link replaces, with what it holds, first.
                if let existing, isDirectoryInode(existing), holds(existing, targetDirectory) {
                    throw UnionError("\(layerName): hardlink '\(Self.text(e))' replaces the directory that holds its target '\(Self.text(e.linkTarget))'")
                }
                link(dir, slot: slot, target)
                continue
            }
            let inode = newInode(source, directory: kind == .directory, parent: dir)
            link(dir, slot: slot, inode)
        }
    }

    private static let maxSymlinkHops = 40

    /// Walks a directory path from the root the way an extractor does (securejoin): symlinks in
    /// the path are followed and kept inside the root; with `create`, missing directories are made
    /// as implied ones (0755, 0:0). nil when a component is missing and `create` is false.
    private func resolveDirectory(_ path: UnsafeRawBufferPointer, create: Bool, layerName: String,
                                  entryPath: IndexEntry) throws -> UInt32? {
        stack.removeAll(keepingCapacity: true)
        stack.append(0)
        var hops = 0
        // Components still to walk, last first. They are slices of mapped bytes (the entry's path
        // or a symlink's target), so an implied directory can borrow its name from them.
        pending.removeAll(keepingCapacity: true)
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
                if let group = inheritedGroup(dir) { impliedGroups[created] = group }
                link(dir, comp, created)
                stack.append(created)
                continue
            }
            if isDirectoryInode(inode) { stack.append(inode); continue }
            if let e = entry(of: inode), e.kind == .symlink {
                hops += 1
                if hops > UnionTree.maxSymlinkHops {
                    throw UnionError("\(layerName): entry '\(Self.text(entryPath))': too many levels of symbolic links")
                }
                if e.linkTarget.first == UInt8(ascii: "/") { stack.removeAll(keepingCapacity: true); stack.append(0) }
                push(e.linkTarget)
                continue
            }
            if !create { return nil }
            throw UnionError("\(layerName): entry '\(Self.text(entryPath))': a parent component is not a directory")
        }
        return stack.last!
    }

    /// The group a directory made inside `directory` inherits: its own, when it is set-group-ID.
    private func inheritedGroup(_ directory: UInt32) -> UInt32? {
        if let group = impliedGroups[directory] { return group }
        guard let e = entry(of: directory), e.mode & 0o2000 != 0 else { return nil }
        return e.gid
    }

    /// Whether `directory` is `ancestor` or inside it.
    private func holds(_ ancestor: UInt32, _ directory: UInt32) -> Bool {
        var d = directory
        while d != ancestor {
            if d == 0 { return false }
            d = parents[listOf(d)]
        }
        return true
    }

    /// The directory holding a hardlink's target, and the target's inode.
    private func resolveHardlink(_ target: UnsafeRawBufferPointer, layerName: String,
                                 entryPath: IndexEntry) throws -> (directory: UInt32, inode: UInt32) {
        let (parentPath, name) = splitPath(target)
        guard let dir = try resolveDirectory(parentPath, create: false, layerName: layerName, entryPath: entryPath),
              let inode = lookup(dir, name) else {
            throw UnionError("\(layerName): hardlink '\(Self.text(entryPath))' points at '\(Self.text(target))', which does not exist")
        }
        if isDirectoryInode(inode) {
            throw UnionError("\(layerName): hardlink '\(Self.text(entryPath))' points at directory '\(Self.text(target))'")
        }
        return (dir, inode)
    }

    /// Drops names that were hidden or replaced, and counts links over the reachable tree.
    private func finish() {
        var work: [UInt32] = [0]
        while let dir = work.popLast() {
            var live: [UInt32] = []
            let l = listOf(dir)
            live.reserveCapacity(lists[l].count)
            var subdirectories: UInt32 = 0
            for (i, s) in lists[l].enumerated() where table.position(Int(s)) == UInt32(i) {
                table.setPosition(Int(s), UInt32(live.count))
                live.append(s)
                let child = table.inode(Int(s))
                if isDirectoryInode(child) {
                    subdirectories += 1
                    parents[listOf(child)] = dir
                    work.append(child)
                } else {
                    nlink[Int(child)] += 1
                }
            }
            lists[l] = live
            nlink[Int(dir)] = 2 + subdirectories
        }
        pending = []
        stack = []
    }

    static func text(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
    static func text(_ e: IndexEntry) -> String { String(decoding: e.path, as: UTF8.self) }
}

#if canImport(Glibc)
import Glibc
#endif
