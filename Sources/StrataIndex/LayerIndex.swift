import StrataCodec
import StrataSystem

public struct IndexError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A cache file (layer index or re-encoded copy) whose bytes are not what was written: it must
/// be rebuilt from the blob, not served.
public struct IndexDamage: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var what: String
    public init(path: String, _ what: String) { self.path = path; self.what = what }
    public var description: String { "\(path): \(what)" }
}

/// A layer index mapped from its file and validated once. Records are read in place; the
/// mapping lives as long as this object, so byte views handed out stay valid while it does.
// @unchecked: immutable; its byte views point into `file`'s mapping, which it keeps alive.
public final class LayerIndex: @unchecked Sendable {
    public let file: MappedFile
    public let compression: LayerCompression
    public let blobSize: UInt64
    public let uncompressedSize: UInt64
    public let entryCount: Int
    public let checkpointCount: Int
    public let digestHex: String
    /// The checksum of the header, which holds the checksums of all sections: the whole index's
    /// identity (merged trees are named by it).
    public let checksum: UInt64
    /// The size of the layer's re-encoded copy (0: it has none; see `IndexFormat`).
    public let copySize: UInt64
    private let bytes: UnsafeRawBufferPointer
    private let entriesOffset: Int
    private let xattrsOffset: Int
    private let sparseOffset: Int
    private let checkpointsOffset: Int
    private let stringsOffset: Int
    private let windowsOffset: Int

    /// Maps and validates an index file; throws if it is truncated, corrupt or of another version
    /// (`IndexDamage` when a checksum disagrees).
    /// With `verify` false only the header, the section bounds and the checkpoints are checked:
    /// what serving a mount from a merged tree (which holds the entries) reads. Checking the
    /// whole file would fault in every entry page of a large index for nothing.
    /// Unverified, the file is not mapped: its header and checkpoint records are read into
    /// memory and windows are read when a span is decoded (see `MappedFile(loadingOnDemand:)`).
    public convenience init(path: String, verify: Bool = true) throws {
        if verify {
            try self.init(file: MappedFile(path: path), verify: true)
        } else {
            let file = try MappedFile(loadingOnDemand: path)
            try file.load(0..<min(file.bytes.count, IndexFormat.headerSize))
            try self.init(file: file, verify: false)
        }
    }

    public init(file: MappedFile, verify: Bool = true) throws {
        self.file = file
        let b = file.bytes
        bytes = b
        let path = file.path
        guard b.count >= IndexFormat.headerSize, Array(b[0..<8]) == IndexFormat.magic else {
            throw IndexError("index \(path): not a strata index")
        }
        guard b.u32(IndexFormat.offVersion) == IndexFormat.version else {
            throw IndexError("index \(path): format version \(b.u32(IndexFormat.offVersion)) is not \(IndexFormat.version)")
        }
        checksum = b.u64(IndexFormat.offChecksum)
        let headerSum = IndexFormat.checksum(UnsafeRawBufferPointer(rebasing: b[0..<IndexFormat.headerSize]),
                                             skipping: IndexFormat.checksumField)
        guard headerSum == checksum else { throw IndexDamage(path: path, "header checksum mismatch") }
        guard b.u64(IndexFormat.offTotalLength) == UInt64(b.count) else {
            throw IndexError("index \(path): truncated (\(b.count) of \(b.u64(IndexFormat.offTotalLength)) bytes)")
        }
        guard let c = StrataIndex.compression(fromCode: UInt8(truncatingIfNeeded: b.u32(IndexFormat.offCompression))) else {
            throw IndexError("index \(path): unknown compression")
        }
        compression = c
        blobSize = b.u64(IndexFormat.offBlobSize)
        uncompressedSize = b.u64(IndexFormat.offUncompressedSize)
        entryCount = Int(b.u32(IndexFormat.offEntryCount))
        checkpointCount = Int(b.u32(IndexFormat.offCheckpointCount))
        entriesOffset = Int(b.u64(IndexFormat.offEntries))
        xattrsOffset = Int(b.u64(IndexFormat.offXattrs))
        sparseOffset = Int(b.u64(IndexFormat.offSparse))
        checkpointsOffset = Int(b.u64(IndexFormat.offCheckpoints))
        stringsOffset = Int(b.u64(IndexFormat.offStrings))
        windowsOffset = Int(b.u64(IndexFormat.offWindows))
        let stringsLength = Int(b.u64(IndexFormat.offStringsLength))
        let windowsLength = Int(b.u64(IndexFormat.offWindowsLength))
        let xattrCount = Int(b.u32(IndexFormat.offXattrCount))
        let sparseCount = Int(b.u32(IndexFormat.offSparseCount))
        copySize = b.u64(IndexFormat.offCopySize)
        digestHex = Array(b[IndexFormat.offDigest..<(IndexFormat.offDigest + 32)]).map { byte in
            let s = String(byte, radix: 16)
            return byte < 16 ? "0" + s : s
        }.joined()
        // Every section must lie inside the file; the records' own offsets are checked below so a
        // crafted file cannot make a lookup read outside the mapping.
        func inside(_ off: Int, _ len: Int) -> Bool { off >= IndexFormat.headerSize && off <= b.count && len >= 0 && len <= b.count - off }
        guard inside(entriesOffset, entryCount * IndexFormat.entrySize),
              inside(xattrsOffset, xattrCount * IndexFormat.xattrSize),
              inside(sparseOffset, sparseCount * IndexFormat.sparseSize),
              inside(checkpointsOffset, checkpointCount * IndexFormat.checkpointSize),
              inside(stringsOffset, stringsLength), inside(windowsOffset, windowsLength) else {
            throw IndexError("index \(path): section outside the file")
        }
        if !file.isResident {
            try file.load(checkpointsOffset..<(checkpointsOffset + checkpointCount * IndexFormat.checkpointSize))
        }
        func check(_ name: String, _ offset: Int, _ length: Int, _ field: Int) throws {
            let sum = IndexFormat.checksum(UnsafeRawBufferPointer(rebasing: b[offset..<(offset + length)]))
            guard sum == b.u64(field) else { throw IndexDamage(path: path, "\(name) checksum mismatch") }
        }
        try check("checkpoints", checkpointsOffset, checkpointCount * IndexFormat.checkpointSize, IndexFormat.offCheckpointsChecksum)
        if verify {
            try check("entries", entriesOffset, entryCount * IndexFormat.entrySize, IndexFormat.offEntriesChecksum)
            try check("xattrs", xattrsOffset, xattrCount * IndexFormat.xattrSize, IndexFormat.offXattrsChecksum)
            try check("sparse segments", sparseOffset, sparseCount * IndexFormat.sparseSize, IndexFormat.offSparseChecksum)
            try check("strings", stringsOffset, stringsLength, IndexFormat.offStringsChecksum)
        }
        for i in 0..<(verify ? entryCount : 0) {
            let r = entriesOffset + i * IndexFormat.entrySize
            guard Int(b.u32(r)) + Int(b.u32(r + 4)) <= stringsLength,
                  Int(b.u32(r + 8)) + Int(b.u32(r + 12)) <= stringsLength,
                  Int(b.u32(r + 76)) + Int(b.u32(r + 80)) <= xattrCount,
                  Int(b.u32(r + 84)) + Int(b.u32(r + 88)) <= sparseCount,
                  b[r + 16] <= IndexEntryKind.opaque.rawValue else {
                throw IndexError("index \(path): entry \(i) is malformed")
            }
        }
        for i in 0..<(verify ? xattrCount : 0) {
            let r = xattrsOffset + i * IndexFormat.xattrSize
            guard Int(b.u32(r)) + Int(b.u32(r + 4)) <= stringsLength, Int(b.u32(r + 8)) + Int(b.u32(r + 12)) <= stringsLength else {
                throw IndexError("index \(path): xattr \(i) is malformed")
            }
        }
        var copyEnd: UInt64 = 0
        for i in 0..<checkpointCount {
            let r = checkpointsOffset + i * IndexFormat.checkpointSize
            let valid: Bool
            switch b[r + IndexFormat.cSource] {
            case IndexFormat.sourceBlob:
                valid = Int(b.u64(r + 16)) + Int(b.u32(r + 24)) <= windowsLength
            case IndexFormat.sourceCopy:
                // Copy frames lie one after another in the copy, which they fill.
                valid = b.u64(r) == copyEnd && b.u32(r + 24) > 0
                copyEnd = b.u64(r) + UInt64(b.u32(r + 24))
            default:
                valid = false
            }
            let before = i == 0 ? 0 : b.u64(r - IndexFormat.checkpointSize + 8)
            guard valid, i == 0 ? b.u64(r + 8) == 0 : b.u64(r + 8) > before, b.u64(r + 8) < max(uncompressedSize, 1) else {
                throw IndexError("index \(path): checkpoint \(i) is malformed")
            }
        }
        guard copyEnd == copySize, copySize == 0 || compression == .zstd else {
            throw IndexError("index \(path): copy frames do not fill the copy")
        }
    }

    @inline(__always) private func string(_ off: UInt32, _ len: UInt32) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[(stringsOffset + Int(off))..<(stringsOffset + Int(off) + Int(len))])
    }

    public func entry(_ i: Int) -> IndexEntry {
        let r = entriesOffset + i * IndexFormat.entrySize
        let b = bytes
        let kind = IndexEntryKind(rawValue: b[r + 16]) ?? .regular
        return IndexEntry(
            path: string(b.u32(r), b.u32(r + 4)),
            linkTarget: string(b.u32(r + 8), b.u32(r + 12)),
            kind: kind,
            isSparse: b[r + 17] & 1 != 0,
            // The record keeps the header's mode; a symlink on Linux is always 0777 (ext4,
            // overlayfs, umoci), whatever some tar writers put there.
            mode: kind == .symlink ? IndexEntry.symlinkMode : b.u32(r + 20), uid: b.u32(r + 24), gid: b.u32(r + 28),
            size: b.u64(r + 32), dataOffset: b.u64(r + 40), storedSize: b.u64(r + 48),
            mtimeSeconds: b.i64(r + 56), mtimeNanoseconds: b.u32(r + 64),
            devMajor: b.u32(r + 68), devMinor: b.u32(r + 72),
            xattrFirst: b.u32(r + 76), xattrCount: b.u32(r + 80),
            sparseFirst: b.u32(r + 84), sparseCount: b.u32(r + 88))
    }

    /// Only the kind: the union build skips or defers most entries on it.
    @inline(__always) public func kind(_ i: Int) -> IndexEntryKind {
        IndexEntryKind(rawValue: bytes[entriesOffset + i * IndexFormat.entrySize + 16]) ?? .regular
    }

    /// Only the normalised path, split at its last "/": what the union build needs of most
    /// entries (decoding the whole record for each of them is a third of a warm mount).
    @inline(__always)
    public func pathParts(_ i: Int) -> (path: UnsafeRawBufferPointer, parent: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer) {
        let r = entriesOffset + i * IndexFormat.entrySize
        let path = string(bytes.u32(r), bytes.u32(r + 4))
        let (parent, name) = splitPath(path)
        return (path, parent, name)
    }

    /// The link target of entry `i` (symlink target, or hardlink target path).
    @inline(__always)
    public func linkTarget(_ i: Int) -> UnsafeRawBufferPointer {
        let r = entriesOffset + i * IndexFormat.entrySize
        return string(bytes.u32(r + 8), bytes.u32(r + 12))
    }

    public func xattr(_ i: Int) -> IndexXattr {
        let r = xattrsOffset + i * IndexFormat.xattrSize
        return IndexXattr(name: string(bytes.u32(r), bytes.u32(r + 4)), value: string(bytes.u32(r + 8), bytes.u32(r + 12)))
    }

    public func sparseSegment(_ i: Int) -> (offset: UInt64, length: UInt64) {
        let r = sparseOffset + i * IndexFormat.sparseSize
        return (bytes.u64(r), bytes.u64(r + 8))
    }

    /// The checkpoint's offsets without its window (cheap; used for span lookup).
    public func checkpointOffsets(_ i: Int) -> (compressed: UInt64, uncompressed: UInt64) {
        let r = checkpointsOffset + i * IndexFormat.checkpointSize
        return (bytes.u64(r), bytes.u64(r + 8))
    }

    /// The full checkpoint, window inflated.
    public func checkpoint(_ i: Int) throws -> Checkpoint {
        let r = checkpointsOffset + i * IndexFormat.checkpointSize
        let storedLength = Int(bytes.u32(r + 24))
        var window: [UInt8] = []
        if storedLength > 0 {
            let start = windowsOffset + Int(bytes.u64(r + 16))
            let stored = try file.read(start..<(start + storedLength))
            guard stored.withUnsafeBytes({ IndexFormat.windowChecksum($0) }) == bytes.u32(r + IndexFormat.cWindowChecksum) else {
                throw IndexDamage(path: file.path, "checkpoint \(i) window checksum mismatch")
            }
            window = try Gzip.decompress(stored)
            guard window.count == Int(bytes.u32(r + 28)) else {
                throw IndexDamage(path: file.path, "checkpoint \(i) window has the wrong size")
            }
        }
        return Checkpoint(compressedOffset: bytes.u64(r), uncompressedOffset: bytes.u64(r + 8),
                          bits: bytes[r + 32], window: window)
    }

    /// Where span `i` is in the layer's re-encoded copy, or nil when it is decoded from the blob.
    @inline(__always)
    public func copyFrame(_ i: Int) -> (offset: UInt64, size: Int)? {
        let r = checkpointsOffset + i * IndexFormat.checkpointSize
        guard bytes[r + IndexFormat.cSource] == IndexFormat.sourceCopy else { return nil }
        return (bytes.u64(r), Int(bytes.u32(r + 24)))
    }

    /// The index of the last checkpoint at or before `offset` in the uncompressed stream.
    public func checkpointIndex(containing offset: UInt64) -> Int {
        var lo = 0, hi = checkpointCount - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if checkpointOffsets(mid).uncompressed <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// Where span `i` ends in the uncompressed stream.
    public func spanEnd(_ i: Int) -> UInt64 {
        i + 1 < checkpointCount ? checkpointOffsets(i + 1).uncompressed : uncompressedSize
    }
}
