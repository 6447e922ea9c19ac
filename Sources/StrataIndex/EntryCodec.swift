/// The entries section of a layer index (format 4): one varint-coded record per tar entry, in
/// tar order, then the directory table and the restart table (see `IndexFormat.EntryStream`).
/// A record holds the entry's name, not its path: the path is its directory's (one string per
/// distinct directory, in the strings section) plus the name. Fields that mostly repeat the
/// previous entry's (directory, mode, owner, mtime) or follow from it (the data offset: right
/// after the previous entry's data and the next header) are stored as differences or not at
/// all. On image b that is 22 bytes per entry against 96 plus the whole path before.
///
/// Record: tag (kind in the low 4 bits, then `tagSparse`, `tagExtra`, `tagAttributes`,
/// `tagOffset`), directory (zigzag difference from the previous entry's), name (length, bytes),
/// if `tagAttributes`: mode, uid, gid, mtime seconds (zigzag difference), nanoseconds; size; if
/// `tagOffset`: data offset (zigzag difference from the expected one); if `tagExtra`: link target
/// (length, bytes), device major and minor, xattrs (first, count), sparse segments (first,
/// count), stored size. Every `restartInterval` entries the state resets, so entry i is decoded
/// from restart i / restartInterval on (the restart table holds those records' offsets).
enum EntryCodec {
    static let restartInterval = 32
    static let tagKind: UInt8 = 0x0F
    static let tagSparse: UInt8 = 0x10
    static let tagExtra: UInt8 = 0x20
    static let tagAttributes: UInt8 = 0x40
    static let tagOffset: UInt8 = 0x80
    /// Directory record: path offset and length in the strings section.
    static let directorySize = 8
    static let restartSize = 8
    /// Trailer at the end of the section: stream length (8), directory count (4), restart count (4).
    static let trailerSize = 16

    /// What the coder carries from one record to the next (reset at every restart).
    struct State {
        var directory: UInt32 = 0
        var mode: UInt32 = 0, uid: UInt32 = 0, gid: UInt32 = 0
        var mtimeSeconds: Int64 = 0
        var mtimeNanoseconds: UInt32 = 0
        /// Where the next entry's data would start in a plain tar: after this one's data,
        /// padded, and one header block.
        var expectedOffset: UInt64 = 0

        mutating func advance(dataOffset: UInt64, storedSize: UInt64) {
            let padded = (storedSize &+ 511) & ~UInt64(511)
            expectedOffset = dataOffset &+ padded &+ 512
        }
    }

    @inline(__always) static func zigzag(_ v: Int64) -> UInt64 { UInt64(bitPattern: (v << 1) ^ (v >> 63)) }
    @inline(__always) static func unzigzag(_ v: UInt64) -> Int64 { Int64(bitPattern: v >> 1) ^ -Int64(bitPattern: v & 1) }

    static func putVarint(_ v: UInt64, _ out: inout [UInt8]) {
        var v = v
        while v >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}

/// Appends entry records (the encoder side of `EntryCodec`), tracking directories and restarts.
struct EntryEncoder {
    /// Records not yet flushed.
    private(set) var stream: [UInt8] = []
    /// Bytes of records already flushed (handed to `flush`'s writer).
    private(set) var flushed = 0
    private(set) var restarts: [UInt64] = []
    private(set) var count = 0
    private var state = EntryCodec.State()
    /// Distinct parent paths, numbered in first-seen order; the last one is checked first
    /// (a tar lists a directory's entries together).
    private(set) var directoryPaths: [[UInt8]] = []
    private var directoryIDs: [[UInt8]: UInt32] = [:]
    private var lastDirectory: UInt32 = UInt32.max

    init() {}

    mutating func directoryID(_ parent: ArraySlice<UInt8>) -> UInt32 {
        if lastDirectory != UInt32.max, directoryPaths[Int(lastDirectory)].elementsEqual(parent) { return lastDirectory }
        let key = Array(parent)
        if let id = directoryIDs[key] { lastDirectory = id; return id }
        let id = UInt32(directoryPaths.count)
        directoryPaths.append(key)
        directoryIDs[key] = id
        lastDirectory = id
        return id
    }

    /// Appends one entry; `xattrFirst`/`sparseFirst` are where its runs start in their sections.
    mutating func append(_ e: IndexEntryInput, xattrFirst: UInt32, sparseFirst: UInt32) {
        typealias C = EntryCodec
        if count % C.restartInterval == 0 {
            restarts.append(UInt64(flushed + stream.count))
            state = C.State()
        }
        count += 1
        let slash = e.path.lastIndex(of: UInt8(ascii: "/"))
        let directory = directoryID(slash.map { e.path[..<$0] } ?? e.path[0..<0])
        let name = slash.map { e.path[($0 + 1)...] } ?? e.path[...]
        let sparseCount = UInt32(e.sparse?.count ?? 0)
        let hasExtra = !e.linkTarget.isEmpty || e.devMajor != 0 || e.devMinor != 0 || !e.xattrs.isEmpty || sparseCount > 0
            || e.storedSize != e.size
        let attributesChange = e.mode != state.mode || e.uid != state.uid || e.gid != state.gid
            || e.mtimeSeconds != state.mtimeSeconds || e.mtimeNanoseconds != state.mtimeNanoseconds
        let offsetDiffers = e.dataOffset != state.expectedOffset
        var tag = e.kind.rawValue & C.tagKind
        if e.sparse != nil { tag |= C.tagSparse }
        if hasExtra { tag |= C.tagExtra }
        if attributesChange { tag |= C.tagAttributes }
        if offsetDiffers { tag |= C.tagOffset }
        stream.append(tag)
        C.putVarint(C.zigzag(Int64(directory) - Int64(state.directory)), &stream)
        C.putVarint(UInt64(name.count), &stream)
        stream.append(contentsOf: name)
        if attributesChange {
            C.putVarint(UInt64(e.mode), &stream)
            C.putVarint(UInt64(e.uid), &stream)
            C.putVarint(UInt64(e.gid), &stream)
            C.putVarint(C.zigzag(e.mtimeSeconds &- state.mtimeSeconds), &stream)
            C.putVarint(UInt64(e.mtimeNanoseconds), &stream)
        }
        C.putVarint(e.size, &stream)
        if offsetDiffers { C.putVarint(C.zigzag(Int64(bitPattern: e.dataOffset &- state.expectedOffset)), &stream) }
        if hasExtra {
            C.putVarint(UInt64(e.linkTarget.count), &stream)
            stream.append(contentsOf: e.linkTarget)
            C.putVarint(UInt64(e.devMajor), &stream)
            C.putVarint(UInt64(e.devMinor), &stream)
            C.putVarint(UInt64(xattrFirst), &stream)
            C.putVarint(UInt64(e.xattrs.count), &stream)
            C.putVarint(UInt64(sparseFirst), &stream)
            C.putVarint(UInt64(sparseCount), &stream)
            C.putVarint(e.storedSize, &stream)
        }
        state.directory = directory
        state.mode = e.mode; state.uid = e.uid; state.gid = e.gid
        state.mtimeSeconds = e.mtimeSeconds; state.mtimeNanoseconds = e.mtimeNanoseconds
        state.advance(dataOffset: e.dataOffset, storedSize: e.storedSize)
    }

    /// Bytes of records made and not yet flushed.
    var pending: Int { stream.count }

    /// Hands the records not yet flushed to `write` (with their offset in the record stream).
    mutating func flush(_ write: (UnsafeRawBufferPointer, Int) throws -> Void) rethrows {
        try stream.withUnsafeBytes { try write($0, flushed) }
        flushed += stream.count
        stream.removeAll(keepingCapacity: true)
    }
}

/// Decodes entry records in order from a position (a restart or the record after the last one
/// decoded). Every read is bounds-checked: a record that runs past the stream, or names a
/// directory that does not exist, sets `malformed` and yields zeros, never a read outside.
public struct EntryCursor {
    let stream: UnsafeRawBufferPointer
    let directories: UnsafeRawBufferPointer   // the directory table
    let directoryCount: Int
    let strings: UnsafeRawBufferPointer
    /// The entry the next `next()` decodes.
    public private(set) var index: Int
    var position: Int
    private var state = EntryCodec.State()
    public private(set) var malformed = false

    init(stream: UnsafeRawBufferPointer, directories: UnsafeRawBufferPointer, directoryCount: Int,
         strings: UnsafeRawBufferPointer, index: Int, position: Int) {
        self.stream = stream; self.directories = directories; self.directoryCount = directoryCount
        self.strings = strings; self.index = index; self.position = position
    }

    @inline(__always) private mutating func byte() -> UInt8 {
        guard position < stream.count else { malformed = true; return 0 }
        let b = stream[position]
        position += 1
        return b
    }

    @inline(__always) private mutating func varint() -> UInt64 {
        var b = byte()
        if b < 0x80 { return UInt64(b) }
        var v = UInt64(b & 0x7F)
        var shift: UInt64 = 7
        repeat {
            b = byte()
            guard shift < 64 else { malformed = true; return 0 }
            v |= UInt64(b & 0x7F) << shift
            shift += 7
        } while b >= 0x80
        return v
    }

    @inline(__always) private mutating func u32() -> UInt32 {
        let v = varint()
        guard v <= UInt64(UInt32.max) else { malformed = true; return 0 }
        return UInt32(v)
    }

    @inline(__always) private mutating func bytes() -> UnsafeRawBufferPointer {
        let n = varint()
        guard n <= UInt64(stream.count - position) else {
            malformed = true
            return UnsafeRawBufferPointer(start: stream.baseAddress, count: 0)
        }
        let r = UnsafeRawBufferPointer(rebasing: stream[position..<(position + Int(n))])
        position += Int(n)
        return r
    }

    /// The path of directory `id` (views of the strings section).
    func directoryPath(_ id: UInt32) -> UnsafeRawBufferPointer {
        guard Int(id) < directoryCount else { return UnsafeRawBufferPointer(start: strings.baseAddress, count: 0) }
        let r = Int(id) * EntryCodec.directorySize
        let off = Int(directories.u32(r)), len = Int(directories.u32(r + 4))
        guard off + len <= strings.count else { return UnsafeRawBufferPointer(start: strings.baseAddress, count: 0) }
        return UnsafeRawBufferPointer(rebasing: strings[off..<(off + len)])
    }

    /// Where the next record starts in the record stream.
    public var streamPosition: Int { position }

    /// Skips forward to entry `i` if it is at most two restarts ahead (cheaper than starting
    /// from its restart); false if it is behind or further.
    public mutating func skip(to i: Int) -> Bool {
        guard i >= index, i - index < 2 * EntryCodec.restartInterval else { return false }
        while index < i { _ = next() }
        return true
    }

    /// Decodes the next entry.
    public mutating func next() -> IndexEntry {
        typealias C = EntryCodec
        if index % C.restartInterval == 0 { state = C.State() }
        index += 1
        let tag = byte()
        let directory64 = Int64(state.directory) + C.unzigzag(varint())
        let directory: UInt32
        if directory64 < 0 || directory64 >= Int64(directoryCount) { malformed = true; directory = 0 } else { directory = UInt32(directory64) }
        let name = bytes()
        if tag & C.tagAttributes != 0 {
            state.mode = u32(); state.uid = u32(); state.gid = u32()
            state.mtimeSeconds = state.mtimeSeconds &+ C.unzigzag(varint())
            state.mtimeNanoseconds = u32()
        }
        let size = varint()
        var dataOffset = state.expectedOffset
        if tag & C.tagOffset != 0 { dataOffset = dataOffset &+ UInt64(bitPattern: C.unzigzag(varint())) }
        var link = UnsafeRawBufferPointer(start: stream.baseAddress, count: 0)
        var devMajor: UInt32 = 0, devMinor: UInt32 = 0, xattrFirst: UInt32 = 0, xattrCount: UInt32 = 0
        var sparseFirst: UInt32 = 0, sparseCount: UInt32 = 0, storedSize = size
        if tag & C.tagExtra != 0 {
            link = bytes()
            devMajor = u32(); devMinor = u32()
            xattrFirst = u32(); xattrCount = u32()
            sparseFirst = u32(); sparseCount = u32()
            storedSize = varint()
        }
        state.directory = directory
        state.advance(dataOffset: dataOffset, storedSize: storedSize)
        var kind = IndexEntryKind(rawValue: tag & C.tagKind) ?? .regular
        if tag & C.tagKind > IndexEntryKind.opaque.rawValue { malformed = true; kind = .regular }
        return IndexEntry(
            directory: directory, parentPath: directoryPath(directory), name: name, linkTarget: link, kind: kind,
            isSparse: tag & C.tagSparse != 0,
            // The record keeps the header's mode; a symlink on Linux is always 0777 (ext4,
            // overlayfs, umoci), whatever some tar writers put there.
            mode: kind == .symlink ? IndexEntry.symlinkMode : state.mode, uid: state.uid, gid: state.gid,
            size: size, dataOffset: dataOffset, storedSize: storedSize,
            mtimeSeconds: state.mtimeSeconds, mtimeNanoseconds: state.mtimeNanoseconds,
            devMajor: devMajor, devMinor: devMinor, xattrFirst: xattrFirst, xattrCount: xattrCount,
            sparseFirst: sparseFirst, sparseCount: sparseCount)
    }
}
