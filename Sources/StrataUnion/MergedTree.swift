import StrataIndex
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// A merged tree (MergedTreeFormat) mapped from the cache and validated once: the image's
/// final view, served in place. Every offset a record holds is checked at open, so a damaged or
/// crafted file is refused there and a request can never read outside the mapping.
// @unchecked: immutable; its byte views point into a mapping (or owned bytes) it keeps alive.
public final class MergedTree: @unchecked Sendable {
    typealias F = MergedTreeFormat

    public struct Child {
        public var name: UnsafeRawBufferPointer
        public var inode: UInt32
    }

    /// The names in one directory, in the order the layers first listed them.
    public struct ChildList: RandomAccessCollection {
        let tree: MergedTree
        public let startIndex: Int
        public let endIndex: Int
        public subscript(i: Int) -> Child { tree.child(i) }
    }

    /// Per-inode views indexed like arrays, so callers read `tree.isDirectory[i]`. The reader
    /// captures nothing, so a view costs no allocation.
    public struct Column<Value> {
        let tree: MergedTree
        let read: (MergedTree, UInt32) -> Value
        public subscript(inode: Int) -> Value { read(tree, UInt32(inode)) }
    }

    public let source: String
    public let inodeCount: Int
    public var byteCount: Int { bytes.count }
    public let layerCount: Int
    private let owner: AnyObject
    private let bytes: UnsafeRawBufferPointer
    private let childCount: Int
    private let slotMask: Int
    private let offAttributes: Int, offInodes: Int, offChildren: Int, offSlots: Int, offExtras: Int
    private let offXattrs: Int, offSparse: Int, offNames: Int, namesLength: Int, offStrings: Int

    /// Maps `path`; `layers` must be the table it was built for (MergedTreeWriter.layerTable).
    public convenience init(path: String, layers: [UInt8]) throws {
        let file = try MappedFile(path: path)
        try self.init(bytes: file.bytes, owner: file, source: path, layers: layers)
    }

    /// Serves `bytes` (kept alive by `owner`), e.g. a tree just built when the cache is not
    /// writable.
    public init(bytes b: UnsafeRawBufferPointer, owner: AnyObject, source: String, layers: [UInt8]) throws {
        self.owner = owner
        self.bytes = b
        self.source = source
        func fail(_ why: String) -> UnionError { UnionError("merged tree \(source): \(why)") }
        // The check reads every record once: a mapped file's pages are dropped behind it, so
        // checking a tree costs a few megabytes of resident memory, not the tree's size.
        let mapped = owner as? MappedFile
        let release: (Range<Int>) -> Void = { mapped?.release($0) }
        do throws(CacheFileFormat.Violation) { try F.file.check(b, release: release) } catch {
            switch error {
            case .notThisFormat: throw fail("not a strata merged tree")
            case .version(let v): throw fail("format version \(v) is not \(F.version)")
            case .truncated: throw fail("truncated")
            case .checksum: throw fail("checksum mismatch")
            case .sectionOutside: throw fail("section outside the file")
            }
        }
        layerCount = F.layers.count(in: b)
        inodeCount = F.inodes.count(in: b)
        childCount = F.children.count(in: b)
        let slotCount = F.slots.count(in: b)
        let extraCount = F.extras.count(in: b)
        let xattrCount = F.xattrs.count(in: b)
        let sparseCount = F.sparse.count(in: b)
        let offLayers = F.layers.offset(in: b)
        let attributeCount = F.attributes.count(in: b)
        offAttributes = F.attributes.offset(in: b)
        offInodes = F.inodes.offset(in: b)
        offChildren = F.children.offset(in: b)
        offSlots = F.slots.offset(in: b)
        offExtras = F.extras.offset(in: b)
        offXattrs = F.xattrs.offset(in: b)
        offSparse = F.sparse.offset(in: b)
        offNames = F.names.offset(in: b)
        namesLength = F.names.count(in: b)
        offStrings = F.strings.offset(in: b)
        let stringsLength = F.strings.count(in: b)
        slotMask = slotCount - 1
        guard inodeCount >= 1, slotCount > childCount, slotCount & slotMask == 0 else { throw fail("section outside the file") }
        guard layerCount * F.Layer.size == layers.count,
              layers.withUnsafeBytes({ memcmp($0.baseAddress!, b.baseAddress! + offLayers, layers.count) == 0 }) else {
            throw fail("built for other layers")
        }
        typealias I = F.Inode
        typealias X = F.Extra
        typealias XA = F.Xattr
        var streamSize: [UInt64] = []
        for l in 0..<layerCount { streamSize.append(b.u64(offLayers + l * F.Layer.size, F.Layer.streamSize)) }
        var sweep = Sweep(release: release, from: offInodes)
        for i in 0..<inodeCount {
            let r = offInodes + i * I.size
            sweep.reached(r)
            let data = b.u64(r, I.data), extra = b.u32(r, I.extra), attributes = Int(b.u32(r, I.attributes))
            guard attributes < attributeCount, extra == F.noExtra || Int(extra) < extraCount,
                  Int(b.u16(r, I.layer)) < max(layerCount, 1) else { throw fail("inode \(i) is malformed") }
            let ok: Bool
            switch b.u32(offAttributes + attributes * F.Attributes.size, F.Attributes.mode) & F.typeMask {
            case F.typeDirectory:
                ok = Int(UInt32(truncatingIfNeeded: data)) + Int(data >> 32) <= childCount && b.u64(r, I.fileSize) < UInt64(inodeCount)
            case F.typeSymlink: ok = Int(UInt32(truncatingIfNeeded: data)) + Int(data >> 32) <= stringsLength
            case F.typeRegular:
                // The file's bytes must lie inside its layer's stream (stored size for sparse files).
                let stored = extra == F.noExtra ? b.u64(r, I.fileSize) : b.u64(offExtras + Int(extra) * X.size, X.storedSize)
                let (end, over) = data.addingReportingOverflow(stored)
                ok = !over && layerCount > 0 && end <= streamSize[Int(b.u16(r, I.layer))]
            case F.typeCharacter, F.typeBlock, F.typeFifo: ok = true
            default: ok = false
            }
            guard ok else { throw fail("inode \(i) is malformed") }
        }
        var nameStart = 0
        sweep = Sweep(release: release, from: offChildren)
        for i in 0..<childCount {
            let r = offChildren + i * F.Child.size
            sweep.reached(r)
            let start = Int(b.u32(r, F.Child.nameStart))
            guard Int(b.u32(r, F.Child.inode)) < inodeCount, start >= nameStart, start <= namesLength else { throw fail("child \(i) is malformed") }
            nameStart = start
        }
        var used = 0
        sweep = Sweep(release: release, from: offSlots)
        for i in 0..<slotCount {
            sweep.reached(offSlots + i * F.Slot.size)
            let s = b.u32(offSlots + i * F.Slot.size, F.Slot.child)
            guard s == F.emptySlot || Int(s) < childCount else { throw fail("lookup slot \(i) is malformed") }
            if s != F.emptySlot { used += 1 }
        }
        // One slot per name leaves empty slots (slotCount > childCount), so every probe ends.
        guard used == childCount else { throw fail("lookup slots do not match the names") }
        for i in 0..<extraCount {
            let r = offExtras + i * X.size
            guard b.fits(r, X.xattrFirst, X.xattrCount, within: xattrCount),
                  b.fits(r, X.sparseFirst, X.sparseCount, within: sparseCount) else {
                throw fail("extra \(i) is malformed")
            }
        }
        if let i = XA.firstMalformed(b, start: offXattrs, count: xattrCount, stringsLength: stringsLength) {
            throw fail("xattr \(i) is malformed")
        }
        release(F.Header.size..<b.count)
    }

    /// Drops the pages of a section behind a check that reads it in order, 8 MiB at a time.
    private struct Sweep {
        let release: (Range<Int>) -> Void
        var released: Int
        init(release: @escaping (Range<Int>) -> Void, from start: Int) { self.release = release; released = start }
        @inline(__always) mutating func reached(_ offset: Int) {
            if offset - released >= 2 << 20 {
                release(released..<offset)
                released = offset
            }
        }
    }

    /// The layer digests (hex, bottom first) a merged tree file was built for, read from its
    /// header and layer table only; nil if it is not a merged tree.
    public static func layerDigests(path: String) -> [String]? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
        defer { fd.close() }
        var header = [UInt8](repeating: 0, count: F.Header.size)
        guard (try? header.withUnsafeMutableBytes({ try fd.readFully(into: $0, at: 0) })) == F.Header.size,
              header.withUnsafeBytes({ $0.bytes(0, F.Header.magic) }) == F.file.magic else { return nil }
        let (count, offset) = header.withUnsafeBytes { (F.layers.count(in: $0), $0.u64(0, F.Header.layers)) }
        guard count <= 4096 else { return nil }
        var table = [UInt8](repeating: 0, count: count * F.Layer.size)
        guard (try? table.withUnsafeMutableBytes({ try fd.readFully(into: $0, at: offset) })) == table.count else { return nil }
        return table.withUnsafeBytes { t in
            (0..<count).map { String(decoding: t.bytes($0 * F.Layer.size, F.Layer.digestHex), as: UTF8.self) }
        }
    }

    // MARK: Records

    @inline(__always) private func record(_ inode: UInt32) -> Int { offInodes + Int(inode) * F.Inode.size }
    @inline(__always) private func string(_ off: UInt32, _ len: UInt32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes.baseAddress! + offStrings + Int(off), count: Int(len))
    }

    @inline(__always) private func attributes(_ inode: UInt32) -> Int {
        offAttributes + Int(bytes.u32(record(inode), F.Inode.attributes)) * F.Attributes.size
    }

    @inline(__always) public func mode(_ inode: UInt32) -> UInt32 { bytes.u32(attributes(inode), F.Attributes.mode) }
    @inline(__always) public func isDirectory(_ inode: UInt32) -> Bool { mode(inode) & F.typeMask == F.typeDirectory }
    @inline(__always) public func isRegular(_ inode: UInt32) -> Bool { mode(inode) & F.typeMask == F.typeRegular }
    @inline(__always) public func isSymlink(_ inode: UInt32) -> Bool { mode(inode) & F.typeMask == F.typeSymlink }
    @inline(__always) public func linkCount(_ inode: UInt32) -> UInt32 { bytes.u32(record(inode), F.Inode.nlink) }
    /// Bytes of a regular file, a symlink's target length, 4096 for directories, else 0.
    @inline(__always) public func size(_ inode: UInt32) -> UInt64 {
        isDirectory(inode) ? F.directorySize : bytes.u64(record(inode), F.Inode.fileSize)
    }
    /// The layer whose entry is this inode (0 for directories no layer lists).
    @inline(__always) public func layer(_ inode: UInt32) -> Int { Int(bytes.u16(record(inode), F.Inode.layer)) }
    /// Where a regular file's bytes start in its layer's tar stream.
    @inline(__always) public func dataOffset(_ inode: UInt32) -> UInt64 { bytes.u64(record(inode), F.Inode.data) }
    @inline(__always) public func isSparse(_ inode: UInt32) -> Bool { bytes.u8(record(inode), F.Inode.flags) & F.flagSparse != 0 }
    /// The directory holding a directory (the root is its own parent); 0 for other inodes.
    @inline(__always) public func parentOf(_ inode: UInt32) -> UInt32 {
        isDirectory(inode) ? UInt32(truncatingIfNeeded: bytes.u64(record(inode), F.Inode.fileSize)) : 0
    }

    /// What a getattr or a listing entry needs, each record read once (the request path).
    public struct Stat {
        public var mode: UInt32, uid: UInt32, gid: UInt32, nlink: UInt32
        /// Bytes of a regular file, a symlink's target length, 4096 for directories, else 0.
        public var size: UInt64
        /// 512-byte blocks: a regular file's stored bytes (a sparse file's data), 8 for directories.
        public var blocks: UInt64
        public var rdev: UInt64
        public var mtimeSeconds: Int64, mtimeNanoseconds: UInt32
    }

    public func stat(_ inode: UInt32) -> Stat {
        let r = record(inode), a = attributes(inode)
        let mode = bytes.u32(a, F.Attributes.mode)
        var size = bytes.u64(r, F.Inode.fileSize), blocks: UInt64 = 0, rdev: UInt64 = 0
        switch mode & F.typeMask {
        case F.typeDirectory: size = F.directorySize; blocks = 8
        case F.typeRegular:
            blocks = ((extra(inode).map { bytes.u64($0, F.Extra.storedSize) } ?? size) + 511) / 512
        case F.typeCharacter, F.typeBlock: rdev = bytes.u64(r, F.Inode.data)
        default: break
        }
        return Stat(mode: mode, uid: bytes.u32(a, F.Attributes.uid), gid: bytes.u32(a, F.Attributes.gid),
                    nlink: bytes.u32(r, F.Inode.nlink),
                    size: size, blocks: blocks, rdev: rdev, mtimeSeconds: bytes.i64(a, F.Attributes.mtimeSeconds),
                    mtimeNanoseconds: bytes.u32(a, F.Attributes.mtimeNanoseconds))
    }

    public func symlinkTarget(_ inode: UInt32) -> UnsafeRawBufferPointer? {
        guard isSymlink(inode) else { return nil }
        let d = bytes.u64(record(inode), F.Inode.data)
        return string(UInt32(truncatingIfNeeded: d), UInt32(d >> 32))
    }

    private func extra(_ inode: UInt32) -> Int? {
        let x = bytes.u32(record(inode), F.Inode.extra)
        return x == F.noExtra ? nil : offExtras + Int(x) * F.Extra.size
    }

    public func xattrCount(_ inode: UInt32) -> Int { extra(inode).map { Int(bytes.u32($0, F.Extra.xattrCount)) } ?? 0 }

    public func xattr(_ inode: UInt32, _ i: Int) -> IndexXattr {
        typealias X = F.Xattr
        let r = offXattrs + (Int(bytes.u32(extra(inode)!, F.Extra.xattrFirst)) + i) * X.size
        return IndexXattr(name: string(bytes.u32(r, X.nameOffset), bytes.u32(r, X.nameLength)),
                          value: string(bytes.u32(r, X.valueOffset), bytes.u32(r, X.valueLength)))
    }

    public func sparseCount(_ inode: UInt32) -> Int { extra(inode).map { Int(bytes.u32($0, F.Extra.sparseCount)) } ?? 0 }

    public func sparseSegment(_ inode: UInt32, _ i: Int) -> (offset: UInt64, length: UInt64) {
        let r = offSparse + (Int(bytes.u32(extra(inode)!, F.Extra.sparseFirst)) + i) * F.Sparse.size
        return (bytes.u64(r, F.Sparse.offset), bytes.u64(r, F.Sparse.length))
    }

    // MARK: Directories

    @inline(__always) private func name(_ i: Int) -> UnsafeRawBufferPointer {
        let r = offChildren + i * F.Child.size
        let start = Int(bytes.u32(r, F.Child.nameStart))
        let end = i + 1 < childCount ? Int(bytes.u32(r + F.Child.size, F.Child.nameStart)) : namesLength
        return UnsafeRawBufferPointer(start: bytes.baseAddress! + offNames + start, count: end - start)
    }

    @inline(__always) private func child(_ i: Int) -> Child {
        Child(name: name(i), inode: bytes.u32(offChildren + i * F.Child.size, F.Child.inode))
    }

    private func childRange(_ directory: UInt32) -> Range<Int> {
        let d = bytes.u64(record(directory), F.Inode.data)
        let first = Int(UInt32(truncatingIfNeeded: d))
        return first..<(first + Int(d >> 32))
    }

    public func children(of directory: UInt32) -> ChildList {
        guard isDirectory(directory) else { return ChildList(tree: self, startIndex: 0, endIndex: 0) }
        let r = childRange(directory)
        return ChildList(tree: self, startIndex: r.lowerBound, endIndex: r.upperBound)
    }

    /// The inode named `name` in `directory`, if any.
    public func lookup(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> UInt32? {
        guard isDirectory(directory) else { return nil }
        let range = childRange(directory)
        if range.isEmpty { return nil }
        var s = ChildTable.hash(directory, name) & slotMask
        while true {
            let c = bytes.u32(offSlots + s * F.Slot.size, F.Slot.child)
            if c == F.emptySlot { return nil }
            if range.contains(Int(c)) {
                let candidate = self.name(Int(c))
                if candidate.count == name.count,
                   name.count == 0 || memcmp(candidate.baseAddress!, name.baseAddress!, name.count) == 0 {
                    return bytes.u32(offChildren + Int(c) * F.Child.size, F.Child.inode)
                }
            }
            s = (s + 1) & slotMask
        }
    }

    // Array-like views (what the writable layer reads).
    public var isDirectory: Column<Bool> { Column(tree: self) { $0.isDirectory($1) } }
    public var nlink: Column<UInt32> { Column(tree: self) { $0.linkCount($1) } }
    public var parent: Column<UInt32> { Column(tree: self) { $0.parentOf($1) } }
    public var children: Column<ChildList> { Column(tree: self) { $0.children(of: $1) } }
}
