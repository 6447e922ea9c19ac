/// What one tar entry of a layer means to the union, after whiteout names are decoded.
public enum IndexEntryKind: UInt8, Sendable {
    case regular = 0, hardlink, symlink, characterDevice, blockDevice, directory, fifo
    /// `.wh.NAME`: the entry's path is the hidden path (NAME in its directory).
    case whiteout
    /// `.wh..wh..opq`: the entry's path is the directory whose lower children are hidden.
    case opaque
}

/// A decoded view of one entry record of a mapped layer index. Byte ranges point into the mapping.
public struct IndexEntry {
    /// The number of the entry's directory in its index (entries of one directory share it).
    public var directory: UInt32
    /// The path of the containing directory ("" for top-level entries), normalised.
    public var parentPath: UnsafeRawBufferPointer
    /// The last path component ("" for the root).
    public var name: UnsafeRawBufferPointer
    public var linkTarget: UnsafeRawBufferPointer  // symlink target as written; hardlink: normalised target path
    public var kind: IndexEntryKind
    public var isSparse: Bool
    public var mode: UInt32
    public var uid: UInt32
    public var gid: UInt32
    public var size: UInt64
    public var dataOffset: UInt64
    public var storedSize: UInt64
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var devMajor: UInt32
    public var devMinor: UInt32
    public var xattrFirst: UInt32
    public var xattrCount: UInt32
    public var sparseFirst: UInt32
    public var sparseCount: UInt32

    /// The permission bits of every symlink, as Linux shows them.
    public static let symlinkMode: UInt32 = 0o777

    /// The normalised path: no leading "/" or "./", no trailing "/"; "" is the root. Assembled
    /// from the directory and the name (the index keeps each directory's path once).
    public var path: [UInt8] {
        var p: [UInt8] = []
        p.reserveCapacity(parentPath.count + 1 + name.count)
        p.append(contentsOf: parentPath)
        if !parentPath.isEmpty { p.append(UInt8(ascii: "/")) }
        p.append(contentsOf: name)
        return p
    }
}

public struct IndexXattr {
    public var name: UnsafeRawBufferPointer
    public var value: UnsafeRawBufferPointer
    public init(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        self.name = name
        self.value = value
    }
}

/// Splits a normalised path at its last "/": (containing directory, last component). Both are
/// views of `path`'s bytes; the parent of a top-level name is empty.
@inline(__always)
public func splitPath(_ path: UnsafeRawBufferPointer) -> (parent: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer) {
    guard let base = path.baseAddress, path.count > 0 else { return (path, path) }
    var slash = path.count - 1
    while slash >= 0 && path[slash] != UInt8(ascii: "/") { slash -= 1 }
    return (UnsafeRawBufferPointer(start: base, count: max(slash, 0)),
            UnsafeRawBufferPointer(start: base + (slash + 1), count: path.count - (slash + 1)))
}
