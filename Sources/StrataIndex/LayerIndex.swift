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
    /// How many compressed spans have a digest (see `IndexFormat`: checkpoints' spans for gzip
    /// and zstd, 1 MiB pieces for plain tar).
    public let spanCount: Int
    private let spansOffset: Int
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
            try file.load(0..<min(file.bytes.count, IndexFormat.Header.size))
            try self.init(file: file, verify: false)
        }
    }

    public init(file: MappedFile, verify: Bool = true) throws {
        typealias F = IndexFormat
        typealias H = IndexFormat.Header
        typealias E = IndexFormat.Entry
        typealias X = IndexFormat.Xattr
        typealias C = IndexFormat.Checkpoint
        self.file = file
        let b = file.bytes
        bytes = b
        let path = file.path
        do throws(CacheFileFormat.Violation) { try F.file.check(b) } catch {
            switch error {
            case .notThisFormat: throw IndexError("index \(path): not a strata index")
            case .version(let v): throw IndexError("index \(path): format version \(v) is not \(F.version)")
            case .checksum: throw IndexDamage(path: path, "header checksum mismatch")
            case .truncated(let size, let expected): throw IndexError("index \(path): truncated (\(size) of \(expected) bytes)")
            case .sectionOutside: throw IndexError("index \(path): section outside the file")
            }
        }
        checksum = b.u64(0, H.checksum)
        guard let c = StrataIndex.compression(fromCode: UInt8(truncatingIfNeeded: b.u32(0, H.compression))) else {
            throw IndexError("index \(path): unknown compression")
        }
        compression = c
        blobSize = b.u64(0, H.blobSize)
        uncompressedSize = b.u64(0, H.uncompressedSize)
        entryCount = F.entries.count(in: b)
        checkpointCount = F.checkpoints.count(in: b)
        entriesOffset = F.entries.offset(in: b)
        xattrsOffset = F.xattrs.offset(in: b)
        sparseOffset = F.sparse.offset(in: b)
        checkpointsOffset = F.checkpoints.offset(in: b)
        stringsOffset = F.strings.offset(in: b)
        windowsOffset = F.windows.offset(in: b)
        let stringsLength = F.strings.count(in: b)
        let windowsLength = F.windows.count(in: b)
        let xattrCount = F.xattrs.count(in: b)
        let sparseCount = F.sparse.count(in: b)
        copySize = b.u64(0, H.copySize)
        digestHex = b.bytes(0, H.digest).map { byte in
            let s = String(byte, radix: 16)
            return byte < 16 ? "0" + s : s
        }.joined()
        spanCount = F.spans.count(in: b)
        spansOffset = F.spans.offset(in: b)
        if !file.isResident {
            try file.load(F.checkpoints.range(in: b))
            try file.load(F.spans.range(in: b))
        }
        // Serving reads the checkpoints and span digests; the rest only when verifying (see init(path:verify:)).
        for section in verify ? [F.checkpoints, F.spans, F.entries, F.xattrs, F.sparse, F.strings] : [F.checkpoints, F.spans] {
            guard F.file.sectionIntact(section, in: b) else { throw IndexDamage(path: path, "\(section.name) checksum mismatch") }
        }
        // The records' own references must stay inside their sections, so a crafted file cannot
        // make a lookup read outside the mapping.
        for i in 0..<(verify ? entryCount : 0) {
            let r = entriesOffset + i * E.size
            guard b.fits(r, E.pathOffset, E.pathLength, within: stringsLength),
                  b.fits(r, E.linkOffset, E.linkLength, within: stringsLength),
                  b.fits(r, E.xattrFirst, E.xattrCount, within: xattrCount),
                  b.fits(r, E.sparseFirst, E.sparseCount, within: sparseCount),
                  b.u8(r, E.kind) <= IndexEntryKind.opaque.rawValue else {
                throw IndexError("index \(path): entry \(i) is malformed")
            }
        }
        if verify, let i = X.firstMalformed(b, start: xattrsOffset, count: xattrCount, stringsLength: stringsLength) {
            throw IndexError("index \(path): xattr \(i) is malformed")
        }
        var copyEnd: UInt64 = 0
        for i in 0..<checkpointCount {
            let r = checkpointsOffset + i * C.size
            let valid: Bool
            switch b.u8(r, C.source) {
            case F.sourceBlob:
                valid = Int(b.u64(r, C.windowOffset)) + Int(b.u32(r, C.storedWindowLength)) <= windowsLength
            case F.sourceCopy:
                // Copy frames lie one after another in the copy, which they fill.
                valid = b.u64(r, C.compressedOffset) == copyEnd && b.u32(r, C.storedWindowLength) > 0
                copyEnd = b.u64(r, C.compressedOffset) + UInt64(b.u32(r, C.storedWindowLength))
            default:
                valid = false
            }
            let at = b.u64(r, C.uncompressedOffset)
            let before = i == 0 ? 0 : b.u64(r - C.size, C.uncompressedOffset)
            guard valid, i == 0 ? at == 0 : at > before, at < max(uncompressedSize, 1) else {
                throw IndexError("index \(path): checkpoint \(i) is malformed")
            }
        }
        guard copyEnd == copySize, copySize == 0 || compression == .zstd else {
            throw IndexError("index \(path): copy frames do not fill the copy")
        }
        // Spans tile the blob, in order, consecutive ones sharing at most one byte.
        var spanEnd: UInt64 = 0
        for i in 0..<spanCount {
            let r = spansOffset + i * F.Span.size
            let (start, end) = (b.u64(r, F.Span.start), b.u64(r, F.Span.end))
            guard i == 0 ? start == 0 : (start == spanEnd || start + 1 == spanEnd), end > start, end <= blobSize else {
                throw IndexError("index \(path): span digest \(i) is malformed")
            }
            spanEnd = end
        }
        // None at all: an index made without its blob (tests); no data is served from it.
        guard spanEnd == blobSize || spanCount == 0 else {
            throw IndexError("index \(path): span digests do not cover the blob")
        }
    }

    /// The blob bytes span `i` covers (see `IndexFormat`).
    public func spanRange(_ i: Int) -> Range<UInt64> {
        let r = spansOffset + i * IndexFormat.Span.size
        return bytes.u64(r, IndexFormat.Span.start)..<bytes.u64(r, IndexFormat.Span.end)
    }

    /// The sha256 of span `i`'s bytes (32 bytes).
    public func spanDigest(_ i: Int) -> [UInt8] {
        bytes.bytes(spansOffset + i * IndexFormat.Span.size, IndexFormat.Span.digest)
    }

    /// The last span starting at or before blob offset `offset` (the one holding it, or the
    /// later of the two sharing a byte).
    public func spanIndex(containing offset: UInt64) -> Int {
        var lo = 0, hi = spanCount - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if spanRange(mid).lowerBound <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    /// The span whose bytes decoding from checkpoint `i` (one of the blob's) reads.
    public func span(forCheckpoint i: Int) -> Int {
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        let c = bytes.u64(r, C.compressedOffset)
        return spanIndex(containing: bytes.u8(r, C.bits) > 0 && c > 0 ? c - 1 : c)
    }

    @inline(__always) private func string(_ r: Int, _ offset: FormatField, _ length: FormatField) -> UnsafeRawBufferPointer {
        let start = stringsOffset + Int(bytes.u32(r, offset))
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + Int(bytes.u32(r, length)))])
    }

    public func entry(_ i: Int) -> IndexEntry {
        typealias E = IndexFormat.Entry
        let r = entriesOffset + i * E.size
        let b = bytes
        let kind = IndexEntryKind(rawValue: b.u8(r, E.kind)) ?? .regular
        return IndexEntry(
            path: string(r, E.pathOffset, E.pathLength),
            linkTarget: string(r, E.linkOffset, E.linkLength),
            kind: kind,
            isSparse: b.u8(r, E.flags) & E.flagSparse != 0,
            // The record keeps the header's mode; a symlink on Linux is always 0777 (ext4,
            // overlayfs, umoci), whatever some tar writers put there.
            mode: kind == .symlink ? IndexEntry.symlinkMode : b.u32(r, E.mode), uid: b.u32(r, E.uid), gid: b.u32(r, E.gid),
            size: b.u64(r, E.fileSize), dataOffset: b.u64(r, E.dataOffset), storedSize: b.u64(r, E.storedSize),
            mtimeSeconds: b.i64(r, E.mtimeSeconds), mtimeNanoseconds: b.u32(r, E.mtimeNanoseconds),
            devMajor: b.u32(r, E.devMajor), devMinor: b.u32(r, E.devMinor),
            xattrFirst: b.u32(r, E.xattrFirst), xattrCount: b.u32(r, E.xattrCount),
            sparseFirst: b.u32(r, E.sparseFirst), sparseCount: b.u32(r, E.sparseCount))
    }

    /// Only the kind: the union build skips or defers most entries on it.
    @inline(__always) public func kind(_ i: Int) -> IndexEntryKind {
        IndexEntryKind(rawValue: bytes.u8(entriesOffset + i * IndexFormat.Entry.size, IndexFormat.Entry.kind)) ?? .regular
    }

    /// Only the normalised path, split at its last "/": what the union build needs of most
    /// entries (decoding the whole record for each of them is a third of a warm mount).
    @inline(__always)
    public func pathParts(_ i: Int) -> (path: UnsafeRawBufferPointer, parent: UnsafeRawBufferPointer, name: UnsafeRawBufferPointer) {
        let path = string(entriesOffset + i * IndexFormat.Entry.size, IndexFormat.Entry.pathOffset, IndexFormat.Entry.pathLength)
        let (parent, name) = splitPath(path)
        return (path, parent, name)
    }

    /// The link target of entry `i` (symlink target, or hardlink target path).
    @inline(__always)
    public func linkTarget(_ i: Int) -> UnsafeRawBufferPointer {
        string(entriesOffset + i * IndexFormat.Entry.size, IndexFormat.Entry.linkOffset, IndexFormat.Entry.linkLength)
    }

    public func xattr(_ i: Int) -> IndexXattr {
        typealias X = IndexFormat.Xattr
        let r = xattrsOffset + i * X.size
        return IndexXattr(name: string(r, X.nameOffset, X.nameLength), value: string(r, X.valueOffset, X.valueLength))
    }

    public func sparseSegment(_ i: Int) -> (offset: UInt64, length: UInt64) {
        typealias S = IndexFormat.Sparse
        let r = sparseOffset + i * S.size
        return (bytes.u64(r, S.offset), bytes.u64(r, S.length))
    }

    /// The checkpoint's offsets without its window (cheap; used for span lookup).
    public func checkpointOffsets(_ i: Int) -> (compressed: UInt64, uncompressed: UInt64) {
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        return (bytes.u64(r, C.compressedOffset), bytes.u64(r, C.uncompressedOffset))
    }

    /// The full checkpoint, window inflated.
    public func checkpoint(_ i: Int) throws -> Checkpoint {
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        let storedLength = Int(bytes.u32(r, C.storedWindowLength))
        var window: [UInt8] = []
        if storedLength > 0 {
            let start = windowsOffset + Int(bytes.u64(r, C.windowOffset))
            let stored = try file.read(start..<(start + storedLength))
            guard stored.withUnsafeBytes({ IndexFormat.windowChecksum($0) }) == bytes.u32(r, C.windowChecksum) else {
                throw IndexDamage(path: file.path, "checkpoint \(i) window checksum mismatch")
            }
            window = try Gzip.decompress(stored)
            guard window.count == Int(bytes.u32(r, C.windowLength)) else {
                throw IndexDamage(path: file.path, "checkpoint \(i) window has the wrong size")
            }
        }
        return Checkpoint(compressedOffset: bytes.u64(r, C.compressedOffset), uncompressedOffset: bytes.u64(r, C.uncompressedOffset),
                          bits: bytes.u8(r, C.bits), window: window)
    }

    /// Where span `i` is in the layer's re-encoded copy, or nil when it is decoded from the blob.
    @inline(__always)
    public func copyFrame(_ i: Int) -> (offset: UInt64, size: Int)? {
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        guard bytes.u8(r, C.source) == IndexFormat.sourceCopy else { return nil }
        return (bytes.u64(r, C.compressedOffset), Int(bytes.u32(r, C.storedWindowLength)))
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
