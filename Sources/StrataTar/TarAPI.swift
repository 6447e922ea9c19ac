/// The kind of a tar entry, after PAX/GNU extension headers are applied.
public enum TarEntryType: Sendable, Equatable {
    case regular, hardlink, symlink, characterDevice, blockDevice, directory, fifo
}

/// One stretch of data of a sparse file.
public struct SparseSegment: Sendable, Equatable {
    public var offset: UInt64   // offset in the logical file
    public var length: UInt64   // bytes of data stored for it (consecutively after the previous segment's)
    public init(offset: UInt64, length: UInt64) { self.offset = offset; self.length = length }
}

/// One entry of a tar stream as `TarReader` yields it.
public struct TarEntry: Sendable, Equatable {
    public var path: [UInt8]         // raw bytes as the archive names it after PAX/GNU overrides; not normalised
    public var type: TarEntryType
    public var mode: UInt32          // the 12 permission bits (suid, sgid, sticky, rwx)
    public var uid: UInt32
    public var gid: UInt32
    public var uname: String
    public var gname: String
    public var size: UInt64          // logical size of the file (for a sparse file: its real size)
    public var mtimeSeconds: Int64
    public var mtimeNanoseconds: UInt32
    public var linkTarget: [UInt8]   // symlink target, or the hardlink's target path (raw bytes)
    public var devMajor: UInt32
    public var devMinor: UInt32
    public var xattrs: [TarXattr]    // in archive order
    public var headerOffset: UInt64  // offset of the first header block (incl. PAX/GNU extension headers)
    public var dataOffset: UInt64    // offset of the data in the uncompressed stream
    public var storedSize: UInt64    // bytes of data stored in the archive (== size unless sparse)
    public var sparseMap: [SparseSegment]?  // nil unless sparse; data stored consecutively from dataOffset
                                            // (for PAX 1.0 sparse, dataOffset points past the map block)

    public init(path: [UInt8], type: TarEntryType, mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                uname: String = "", gname: String = "", size: UInt64 = 0, mtimeSeconds: Int64 = 0,
                mtimeNanoseconds: UInt32 = 0, linkTarget: [UInt8] = [], devMajor: UInt32 = 0, devMinor: UInt32 = 0,
                xattrs: [TarXattr] = [], headerOffset: UInt64 = 0, dataOffset: UInt64 = 0, storedSize: UInt64 = 0,
                sparseMap: [SparseSegment]? = nil) {
        self.path = path; self.type = type; self.mode = mode; self.uid = uid; self.gid = gid
        self.uname = uname; self.gname = gname; self.size = size; self.mtimeSeconds = mtimeSeconds
        self.mtimeNanoseconds = mtimeNanoseconds; self.linkTarget = linkTarget; self.devMajor = devMajor
        self.devMinor = devMinor; self.xattrs = xattrs; self.headerOffset = headerOffset
        self.dataOffset = dataOffset; self.storedSize = storedSize; self.sparseMap = sparseMap
    }
}

extension TarEntry {
    /// For messages and tests; file names are bytes and need not be UTF-8.
    public var pathString: String { String(decoding: path, as: UTF8.self) }
    public var linkTargetString: String { String(decoding: linkTarget, as: UTF8.self) }
}

/// An extended attribute carried by a PAX header (SCHILY.xattr.* or LIBARCHIVE.xattr.*).
public struct TarXattr: Sendable, Equatable {
    public var name: String
    public var value: [UInt8]
    public init(name: String, value: [UInt8]) { self.name = name; self.value = value }
}

/// Where the reader gets the uncompressed tar stream from (a decoder, a file, memory).
public protocol TarSource: AnyObject {
    /// Fills as much of `buffer` as it can; returns fewer bytes only at end of stream.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Drops up to `count` bytes (data the reader skips); returns how many, fewer only at end
    /// of stream. The default reads them into a scratch buffer.
    func discard(_ count: Int) throws -> Int
}

extension TarSource {
    public func discard(_ count: Int) throws -> Int {
        try withUnsafeTemporaryAllocation(byteCount: min(count, 64 << 10), alignment: 16) { scratch in
            var done = 0
            while done < count {
                let want = min(count - done, scratch.count)
                let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: scratch[0..<want]))
                if n <= 0 { break }
                done += n
            }
            return done
        }
    }
}

/// A tar stream that cannot be read: what is wrong, where, and in which entry.
public struct TarError: Error, CustomStringConvertible, Sendable {
    public var message: String   // e.g. "bad header checksum", "truncated data"
    public var offset: UInt64    // offset in the uncompressed stream
    public var entry: String?    // path of the entry concerned, when known
    public init(message: String, offset: UInt64, entry: String? = nil) {
        self.message = message; self.offset = offset; self.entry = entry
    }
    public var description: String {
        if let entry { return "tar entry '\(entry)' at offset \(offset): \(message)" }
        return "tar stream at offset \(offset): \(message)"
    }
}
