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
        guard b.count >= F.headerSize, b.baseAddress != nil, Array(b[0..<8]) == F.magic else { throw fail("not a strata merged tree") }
        guard b.u32(F.offVersion) == F.version else { throw fail("format version \(b.u32(F.offVersion)) is not \(F.version)") }
        guard b.u64(F.offTotalLength) == UInt64(b.count) else { throw fail("truncated") }
        guard fileChecksum(b, skipping: F.offChecksum..<(F.offChecksum + 8)) == b.u64(F.offChecksum) else {
            throw fail("checksum mismatch")
        }
        layerCount = Int(b.u32(F.offLayerCount))
        inodeCount = Int(b.u32(F.offInodeCount))
        childCount = Int(b.u32(F.offChildCount))
        let slotCount = Int(b.u32(F.offSlotCount))
        let extraCount = Int(b.u32(F.offExtraCount))
        let xattrCount = Int(b.u32(F.offXattrCount))
        let sparseCount = Int(b.u32(F.offSparseCount))
        let offLayers = Int(b.u64(F.offLayers))
        let attributeCount = Int(b.u32(F.offAttributeCount))
        offAttributes = Int(b.u64(F.offAttributes))
        offInodes = Int(b.u64(F.offInodes))
        offChildren = Int(b.u64(F.offChildren))
        offSlots = Int(b.u64(F.offSlots))
        offExtras = Int(b.u64(F.offExtras))
        offXattrs = Int(b.u64(F.offXattrs))
        offSparse = Int(b.u64(F.offSparse))
        offNames = Int(b.u64(F.offNames))
        namesLength = Int(b.u64(F.offNamesLength))
        offStrings = Int(b.u64(F.offStrings))
        let stringsLength = Int(b.u64(F.offStringsLength))
        slotMask = slotCount - 1
        func inside(_ off: Int, _ count: Int, _ size: Int) -> Bool {
            off >= F.headerSize && off <= b.count && count >= 0 && count <= (b.count - off) / size
        }
        guard inodeCount >= 1, slotCount > childCount, slotCount & slotMask == 0,
              inside(offLayers, layerCount, F.layerSize), inside(offAttributes, attributeCount, F.attributeSize),
              inside(offInodes, inodeCount, F.inodeSize),
              inside(offChildren, childCount, F.childSize), inside(offSlots, slotCount, F.slotSize),
              inside(offExtras, extraCount, F.extraSize), inside(offXattrs, xattrCount, F.xattrSize),
              inside(offSparse, sparseCount, F.sparseSize), inside(offNames, namesLength, 1),
              inside(offStrings, stringsLength, 1) else {
            throw fail("section outside the file")
        }
        guard layerCount * F.layerSize == layers.count,
              layers.withUnsafeBytes({ memcmp($0.baseAddress!, b.baseAddress! + offLayers, layers.count) == 0 }) else {
            throw fail("built for other layers")
        }
        func stringOK(_ off: UInt32, _ len: UInt32) -> Bool { Int(off) + Int(len) <= stringsLength }
        var streamSize: [UInt64] = []
        for l in 0..<layerCount { streamSize.append(b.u64(offLayers + l * F.layerSize + 64)) }
        for i in 0..<inodeCount {
            let r = offInodes + i * F.inodeSize
            let data = b.u64(r + F.iData), extra = b.u32(r + F.iExtra), attributes = Int(b.u32(r + F.iAttributes))
            guard attributes < attributeCount, extra == F.noExtra || Int(extra) < extraCount,
                  Int(b.u16(r + F.iLayer)) < max(layerCount, 1) else { throw fail("inode \(i) is malformed") }
            let ok: Bool
            switch b.u32(offAttributes + attributes * F.attributeSize + F.aMode) & F.typeMask {
            case F.typeDirectory:
                ok = Int(UInt32(truncatingIfNeeded: data)) + Int(data >> 32) <= childCount && b.u64(r + F.iSize) < UInt64(inodeCount)
            case F.typeSymlink: ok = stringOK(UInt32(truncatingIfNeeded: data), UInt32(data >> 32))
            case F.typeRegular:
                // The file's bytes must lie inside its layer's stream (stored size for sparse files).
                let stored = extra == F.noExtra ? b.u64(r + F.iSize) : b.u64(offExtras + Int(extra) * F.extraSize + 16)
                let (end, over) = data.addingReportingOverflow(stored)
                ok = !over && layerCount > 0 && end <= streamSize[Int(b.u16(r + F.iLayer))]
            case F.typeCharacter, F.typeBlock, F.typeFifo: ok = true
            default: ok = false
            }
            guard ok else { throw fail("inode \(i) is malformed") }
        }
        var nameStart = 0
        for i in 0..<childCount {
            let r = offChildren + i * F.childSize
            let start = Int(b.u32(r + 4))
            guard Int(b.u32(r)) < inodeCount, start >= nameStart, start <= namesLength else { throw fail("child \(i) is malformed") }
            nameStart = start
        }
        var used = 0
        for i in 0..<slotCount {
            let s = b.u32(offSlots + i * F.slotSize)
            guard s == F.emptySlot || Int(s) < childCount else { throw fail("lookup slot \(i) is malformed") }
            if s != F.emptySlot { used += 1 }
        }
        // One slot per name leaves empty slots (slotCount > childCount), so every probe ends.
        guard used == childCount else { throw fail("lookup slots do not match the names") }
        for i in 0..<extraCount {
            let r = offExtras + i * F.extraSize
            guard Int(b.u32(r)) + Int(b.u32(r + 4)) <= xattrCount, Int(b.u32(r + 8)) + Int(b.u32(r + 12)) <= sparseCount else {
                throw fail("extra \(i) is malformed")
            }
        }
        for i in 0..<xattrCount {
            let r = offXattrs + i * F.xattrSize
            guard stringOK(b.u32(r), b.u32(r + 4)), stringOK(b.u32(r + 8), b.u32(r + 12)) else { throw fail("xattr \(i) is malformed") }
        }
    }

    /// The layer digests (hex, bottom first) a merged tree file was built for, read from its
    /// header and layer table only; nil if it is not a merged tree.
    public static func layerDigests(path: String) -> [String]? {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return nil }
        defer { fd.close() }
        var header = [UInt8](repeating: 0, count: F.headerSize)
        guard (try? header.withUnsafeMutableBytes({ try fd.readFully(into: $0, at: 0) })) == F.headerSize,
              Array(header[0..<8]) == F.magic else { return nil }
        let (count, offset) = header.withUnsafeBytes { (Int($0.u32(F.offLayerCount)), $0.u64(F.offLayers)) }
        guard count <= 4096 else { return nil }
        var table = [UInt8](repeating: 0, count: count * F.layerSize)
        guard (try? table.withUnsafeMutableBytes({ try fd.readFully(into: $0, at: offset) })) == table.count else { return nil }
        return (0..<count).map { String(decoding: table[($0 * F.layerSize)..<($0 * F.layerSize + 64)], as: UTF8.self) }
    }

    // MARK: Records

    @inline(__always) private func record(_ inode: UInt32) -> Int { offInodes + Int(inode) * F.inodeSize }
    @inline(__always) private func string(_ off: UInt32, _ len: UInt32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: bytes.baseAddress! + offStrings + Int(off), count: Int(len))
    }

    @inline(__always) private func attributes(_ inode: UInt32) -> Int {
        offAttributes + Int(bytes.u32(record(inode) + F.iAttributes)) * F.attributeSize
    }

    @inline(__always) public func mode(_ inode: UInt32) -> UInt32 { bytes.u32(attributes(inode) + F.aMode) }
    @inline(__always) public func isDirectory(_ inode: UInt32) -> Bool { mode(inode) & F.typeMask == F.typeDirectory }
    @inline(__always) public func isRegular(_ inode: UInt32) -> Bool { mode(inode) & F.typeMask == F.typeRegular }
    @inline(__always) public func isSymlink(_ inode: UInt32) -> Bool { mode(inode) & F.typeMask == F.typeSymlink }
    @inline(__always) public func linkCount(_ inode: UInt32) -> UInt32 { bytes.u32(record(inode) + F.iNlink) }
    /// Bytes of a regular file, a symlink's target length, 4096 for directories, else 0.
    @inline(__always) public func size(_ inode: UInt32) -> UInt64 {
        isDirectory(inode) ? F.directorySize : bytes.u64(record(inode) + F.iSize)
    }
    /// The layer whose entry is this inode (0 for directories no layer lists).
    @inline(__always) public func layer(_ inode: UInt32) -> Int { Int(bytes.u16(record(inode) + F.iLayer)) }
    /// Where a regular file's bytes start in its layer's tar stream.
    @inline(__always) public func dataOffset(_ inode: UInt32) -> UInt64 { bytes.u64(record(inode) + F.iData) }
    @inline(__always) public func isSparse(_ inode: UInt32) -> Bool { bytes[record(inode) + F.iFlags] & F.flagSparse != 0 }
    /// The directory holding a directory (the root is its own parent); 0 for other inodes.
    @inline(__always) public func parentOf(_ inode: UInt32) -> UInt32 {
        isDirectory(inode) ? UInt32(truncatingIfNeeded: bytes.u64(record(inode) + F.iSize)) : 0
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
        let mode = bytes.u32(a + F.aMode)
        var size = bytes.u64(r + F.iSize), blocks: UInt64 = 0, rdev: UInt64 = 0
        switch mode & F.typeMask {
        case F.typeDirectory: size = F.directorySize; blocks = 8
        case F.typeRegular:
            blocks = ((extra(inode).map { bytes.u64($0 + 16) } ?? size) + 511) / 512
        case F.typeCharacter, F.typeBlock: rdev = bytes.u64(r + F.iData)
        default: break
        }
        return Stat(mode: mode, uid: bytes.u32(a + F.aUid), gid: bytes.u32(a + F.aGid), nlink: bytes.u32(r + F.iNlink),
                    size: size, blocks: blocks, rdev: rdev, mtimeSeconds: bytes.i64(a + F.aMtime),
                    mtimeNanoseconds: bytes.u32(a + F.aMtimeNsec))
    }

    public func symlinkTarget(_ inode: UInt32) -> UnsafeRawBufferPointer? {
        guard isSymlink(inode) else { return nil }
        let d = bytes.u64(record(inode) + F.iData)
        return string(UInt32(truncatingIfNeeded: d), UInt32(d >> 32))
    }

    private func extra(_ inode: UInt32) -> Int? {
        let x = bytes.u32(record(inode) + F.iExtra)
        return x == F.noExtra ? nil : offExtras + Int(x) * F.extraSize
    }

    public func xattrCount(_ inode: UInt32) -> Int { extra(inode).map { Int(bytes.u32($0 + 4)) } ?? 0 }

    public func xattr(_ inode: UInt32, _ i: Int) -> IndexXattr {
        let r = offXattrs + (Int(bytes.u32(extra(inode)!)) + i) * F.xattrSize
        return IndexXattr(name: string(bytes.u32(r), bytes.u32(r + 4)), value: string(bytes.u32(r + 8), bytes.u32(r + 12)))
    }

    public func sparseCount(_ inode: UInt32) -> Int { extra(inode).map { Int(bytes.u32($0 + 12)) } ?? 0 }

    public func sparseSegment(_ inode: UInt32, _ i: Int) -> (offset: UInt64, length: UInt64) {
        let r = offSparse + (Int(bytes.u32(extra(inode)! + 8)) + i) * F.sparseSize
        return (bytes.u64(r), bytes.u64(r + 8))
    }

    // MARK: Directories

    @inline(__always) private func name(_ i: Int) -> UnsafeRawBufferPointer {
        let r = offChildren + i * F.childSize
        let start = Int(bytes.u32(r + 4))
        let end = i + 1 < childCount ? Int(bytes.u32(r + F.childSize + 4)) : namesLength
        return UnsafeRawBufferPointer(start: bytes.baseAddress! + offNames + start, count: end - start)
    }

    @inline(__always) private func child(_ i: Int) -> Child {
        Child(name: name(i), inode: bytes.u32(offChildren + i * F.childSize))
    }

    private func childRange(_ directory: UInt32) -> Range<Int> {
        let d = bytes.u64(record(directory) + F.iData)
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
            let c = bytes.u32(offSlots + s * F.slotSize)
            if c == F.emptySlot { return nil }
            if range.contains(Int(c)) {
                let candidate = self.name(Int(c))
                if candidate.count == name.count,
                   name.count == 0 || memcmp(candidate.baseAddress!, name.baseAddress!, name.count) == 0 {
                    return bytes.u32(offChildren + Int(c) * F.childSize)
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

extension UnsafeRawBufferPointer {
    @inline(__always) func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
}
