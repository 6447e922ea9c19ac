import StrataCodec
import StrataSystem

public struct IndexError: SystemErrorWrapping, Sendable {
    public var message: String
    /// The failed system call behind it, if one is.
    public var cause: SystemError?
    public init(_ message: String, cause: SystemError? = nil) { self.message = message; self.cause = cause }

    /// `message`, then what `error` says; a failed system call (itself, or the cause of a
    /// wrapping error) stays `cause`, not text.
    public init(_ message: String, wrapping error: any Error) {
        if let e = error as? SystemError {
            self.init("\(message): \(e.subject)", cause: e)
        } else if let e = error as? any SystemErrorWrapping, let cause = e.cause {
            self.init("\(message): \(e.message)", cause: cause)
        } else {
            self.init("\(message): \(error)")
        }
    }
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
    /// The spacing its checkpoints were placed at (`IndexFormat.Header.checkpointSpacing`).
    public let checkpointSpacing: UInt64
    /// How many compressed spans have a digest (see `IndexFormat`: checkpoints' spans for gzip
    /// and zstd, 1 MiB pieces for plain tar).
    public let spanCount: Int
    /// The span digests are of chunks' uncompressed bytes, one per checkpoint (an index built
    /// from a table of contents; see `IndexFormat`), not of compressed spans.
    public let contentSpans: Bool
    private let spansOffset: Int
    private let bytes: UnsafeRawBufferPointer
    private let entriesOffset: Int
    /// The entries section's parts (see `EntryCodec`), as offsets in the file.
    private let streamLength: Int
    private let directoriesOffset: Int
    public let directoryCount: Int
    private let restartsOffset: Int
    private let restartCount: Int
    private let xattrsOffset: Int
    private let sparseOffset: Int
    private let checkpointsOffset: Int
    private let stringsOffset: Int
    private let stringsLength: Int
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
        entryCount = Int(b.u32(0, H.entryCount))
        checkpointCount = F.checkpoints.count(in: b)
        entriesOffset = F.entries.offset(in: b)
        xattrsOffset = F.xattrs.offset(in: b)
        sparseOffset = F.sparse.offset(in: b)
        checkpointsOffset = F.checkpoints.offset(in: b)
        stringsOffset = F.strings.offset(in: b)
        windowsOffset = F.windows.offset(in: b)
        stringsLength = F.strings.count(in: b)
        let windowsLength = F.windows.count(in: b)
        let xattrCount = F.xattrs.count(in: b)
        let sparseCount = F.sparse.count(in: b)
        copySize = b.u64(0, H.copySize)
        checkpointSpacing = b.u64(0, H.checkpointSpacing)
        digestHex = b.bytes(0, H.digest).map { byte in
            let s = String(byte, radix: 16)
            return byte < 16 ? "0" + s : s
        }.joined()
        spanCount = F.spans.count(in: b)
        spansOffset = F.spans.offset(in: b)
        switch b.u32(0, H.spanKind) {
        case F.spanKindCompressed: contentSpans = false
        case F.spanKindContent: contentSpans = true
        default: throw IndexError("index \(path): unknown span digest kind")
        }
        if !file.isResident {
            try file.load(F.checkpoints.range(in: b))
            try file.load(F.spans.range(in: b))
        }
        // Serving reads the checkpoints and span digests; the rest only when verifying (see init(path:verify:)).
        for section in verify ? [F.checkpoints, F.spans, F.entries, F.xattrs, F.sparse, F.strings] : [F.checkpoints, F.spans] {
            guard F.file.sectionIntact(section, in: b) else { throw IndexDamage(path: path, "\(section.name) checksum mismatch") }
        }
        // The entries section ends with its trailer, which places the directory and restart tables.
        let entriesLength = F.entries.count(in: b)
        typealias EC = EntryCodec
        guard entriesLength >= EC.trailerSize else { throw IndexError("index \(path): entries section is malformed") }
        let trailer = entriesOffset + entriesLength - EC.trailerSize
        // An unverified index is not resident: its entries are read only after a verified open.
        let (stream, dirs, restarts) = file.isResident
            ? (Int(truncatingIfNeeded: b.u64(trailer)), Int(b.u32(trailer + 8)), Int(b.u32(trailer + 12))) : (0, 0, 0)
        guard stream >= 0, stream <= entriesLength, restarts == (entryCount + EC.restartInterval - 1) / EC.restartInterval || !file.isResident,
              stream + dirs * EC.directorySize + restarts * EC.restartSize + EC.trailerSize == entriesLength || !file.isResident else {
            throw IndexError("index \(path): entries section is malformed")
        }
        streamLength = stream
        directoryCount = dirs
        directoriesOffset = entriesOffset + stream
        restartsOffset = directoriesOffset + dirs * EC.directorySize
        restartCount = restarts
        // The records' own references must stay inside their sections, so a crafted file cannot
        // make a lookup read outside the mapping: every record is decoded once.
        if verify {
            for d in 0..<directoryCount {
                let r = directoriesOffset + d * EntryCodec.directorySize
                guard Int(b.u32(r)) + Int(b.u32(r + 4)) <= stringsLength else {
                    throw IndexError("index \(path): directory \(d) is malformed")
                }
            }
            var cursor = cursor(from: 0)
            var released = 0
            for i in 0..<entryCount {
                // Pages read through are dropped behind the check (see `releaseEntries`).
                if cursor.position - released >= 8 << 20 {
                    releaseEntries(released..<cursor.position)
                    released = cursor.position
                }
                if i % EntryCodec.restartInterval == 0,
                   b.u64(restartsOffset + i / EntryCodec.restartInterval * EntryCodec.restartSize) != UInt64(cursor.position) {
                    throw IndexError("index \(path): entry \(i) is malformed")
                }
                let e = cursor.next()
                guard !cursor.malformed, cursor.position <= streamLength,
                      Int(e.xattrFirst) + Int(e.xattrCount) <= xattrCount,
                      Int(e.sparseFirst) + Int(e.sparseCount) <= sparseCount else {
                    throw IndexError("index \(path): entry \(i) is malformed")
                }
            }
            guard cursor.position == streamLength else { throw IndexError("index \(path): entries section is malformed") }
            releaseEntries(released..<streamLength)
        }
        if verify, let i = X.firstMalformed(b, start: xattrsOffset, count: xattrCount, stringsLength: stringsLength) {
            throw IndexError("index \(path): xattr \(i) is malformed")
        }
        var copyEnd: UInt64 = 0
        for i in 0..<checkpointCount {
            let r = checkpointsOffset + i * C.size
            let valid: Bool
            switch b.u8(r, C.source) {
            case F.sourceBlob where contentSpans:
                // A chunk's member start: no window (the field holds the bytes to skip).
                valid = b.u32(r, C.storedWindowLength) == 0 && b.u8(r, C.bits) == 0 && b.u64(r, C.windowOffset) < 1 << 32
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
        if contentSpans {
            // One span per chunk, at its checkpoint's member start, in blob order, not overlapping.
            guard spanCount == checkpointCount, copySize == 0 else { throw IndexError("index \(path): content spans do not match the checkpoints") }
            var (begin, end): (UInt64, UInt64) = (.max, 0)
            for i in 0..<spanCount {
                let r = spansOffset + i * F.Span.size
                let (start, stop) = (b.u64(r, F.Span.start), b.u64(r, F.Span.end))
                // Chunks sharing a member share its range (see `TOCIndexBuilder`).
                guard start >= end || (start == begin && stop == end), stop > start, stop <= blobSize,
                      start == b.u64(checkpointsOffset + i * C.size, C.compressedOffset) else {
                    throw IndexError("index \(path): span digest \(i) is malformed")
                }
                (begin, end) = (start, stop)
            }
            return
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
        if contentSpans { return i }
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        let c = bytes.u64(r, C.compressedOffset)
        return spanIndex(containing: bytes.u8(r, C.bits) > 0 && c > 0 ? c - 1 : c)
    }

    @inline(__always) private func string(_ r: Int, _ offset: FormatField, _ length: FormatField) -> UnsafeRawBufferPointer {
        let start = stringsOffset + Int(bytes.u32(r, offset))
        return UnsafeRawBufferPointer(rebasing: bytes[start..<(start + Int(bytes.u32(r, length)))])
    }

    /// A cursor decoding entries in order from entry `i` (it starts at the restart before `i`
    /// and decodes up to it). Reading entries in order this way is what the union build does.
    public func cursor(from i: Int) -> EntryCursor {
        let restart = min(i / EntryCodec.restartInterval, max(restartCount - 1, 0))
        let position = restartCount == 0 ? 0 : Int(truncatingIfNeeded: bytes.u64(restartsOffset + restart * EntryCodec.restartSize))
        var c = EntryCursor(stream: UnsafeRawBufferPointer(rebasing: bytes[entriesOffset..<(entriesOffset + streamLength)]),
                            directories: UnsafeRawBufferPointer(rebasing: bytes[directoriesOffset..<restartsOffset]),
                            directoryCount: directoryCount,
                            strings: UnsafeRawBufferPointer(rebasing: bytes[stringsOffset..<(stringsOffset + stringsLength)]),
                            index: restart * EntryCodec.restartInterval, position: min(position, streamLength))
        while c.index < i { _ = c.next() }
        return c
    }

    /// Drops the pages of entry records in `range` (offsets in the record stream, as
    /// `EntryCursor.streamPosition` gives them) from resident memory, after a pass that read
    /// them in order: they stay in the page cache and come back when touched. This is what
    /// keeps checking or merging the entries of a large layer from holding them all.
    public var entryStreamLength: Int { streamLength }

    public func releaseEntries(_ range: Range<Int>) {
        file.release((entriesOffset + range.lowerBound)..<(entriesOffset + range.upperBound))
    }

    /// Entry `i`, decoded from its restart (up to `EntryCodec.restartInterval` records): for
    /// reading entries in order, use a cursor.
    public func entry(_ i: Int) -> IndexEntry {
        var c = cursor(from: i)
        return c.next()
    }

    /// Only the kind.
    public func kind(_ i: Int) -> IndexEntryKind { entry(i).kind }

    /// The path of directory `id` of this index.
    public func directoryPath(_ id: UInt32) -> UnsafeRawBufferPointer { cursor(from: 0).directoryPath(id) }

    /// The link target of entry `i` (symlink target, or hardlink target path).
    public func linkTarget(_ i: Int) -> UnsafeRawBufferPointer { entry(i).linkTarget }

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

    /// The unread high bits of the byte before checkpoint `i` (see `Checkpoint`).
    public func checkpointBits(_ i: Int) -> UInt8 {
        bytes.u8(checkpointsOffset + i * IndexFormat.Checkpoint.size, IndexFormat.Checkpoint.bits)
    }

    /// The full checkpoint, window inflated. A window not in the file (an index installed
    /// without its windows) is made by `makeWindow` when it can (the stored bytes, checked
    /// against the record's checksum by `installWindow`; nil: it cannot), else fetched.
    public func checkpoint(_ i: Int, makeWindow: ((Int) -> [UInt8]?)? = nil) throws -> Checkpoint {
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        let storedLength = Int(bytes.u32(r, C.storedWindowLength))
        var window: [UInt8] = []
        if storedLength > 0 {
            let start = windowsOffset + Int(bytes.u64(r, C.windowOffset))
            var stored = try file.read(start..<(start + storedLength))
            let checksum = bytes.u32(r, C.windowChecksum)
            if stored.withUnsafeBytes({ IndexFormat.windowChecksum($0) }) != checksum {
                // An index installed without its windows (a hole reads as zeros) fetches the
                // window now; any other mismatch is damage: the index is rebuilt.
                guard let source = IndexWindows.source(indexPath: file.path) else {
                    throw IndexDamage(path: file.path, "checkpoint \(i) window checksum mismatch")
                }
                if let made = makeWindow?(i) {
                    stored = made
                } else {
                    stored = try IndexWindows.fetch(source, indexPath: file.path, layer: digestHex, checkpoint: i,
                                                    range: start..<(start + storedLength), checksum: checksum)
                }
            }
            do { window = try Gzip.decompress(member: stored, exactly: Int(bytes.u32(r, C.windowLength))) } catch {
                throw IndexDamage(path: file.path, "checkpoint \(i) window: \(error)")
            }
        }
        return Checkpoint(compressedOffset: bytes.u64(r, C.compressedOffset), uncompressedOffset: bytes.u64(r, C.uncompressedOffset),
                          bits: bytes.u8(r, C.bits), window: window)
    }

    /// Whether checkpoint `i` has a window that is not in the file yet: an index installed
    /// without its windows (a window source is registered for it) before that window came.
    public func windowMissing(_ i: Int) -> Bool {
        guard let stored = storedWindow(i), IndexWindows.source(indexPath: file.path) != nil,
              let bytes = try? file.read(stored.range) else { return false }
        return !bytes.withUnsafeBytes { IndexWindows.matches($0, checksum: stored.checksum) }
    }

    /// The length of checkpoint `i`'s window once inflated (0: none).
    public func windowLength(_ i: Int) -> Int {
        Int(bytes.u32(checkpointsOffset + i * IndexFormat.Checkpoint.size, IndexFormat.Checkpoint.windowLength))
    }

    /// Whether checkpoint `i`'s window lies whole in the span before it (same member, no copy
    /// frame): then decoding that span makes the window.
    public func windowLiesInSpanBefore(_ i: Int) -> Bool {
        guard i > 0, spanCount == checkpointCount, copyFrame(i - 1) == nil else { return false }
        let before = checkpointOffsets(i - 1).uncompressed, at = checkpointOffsets(i).uncompressed
        return at > before && at - before >= UInt64(windowLength(i))
    }

    /// Puts a window made here (the end of the span before, decoded) into the file, stored as
    /// the index stores windows, if it matches the checksum its record holds: returns the
    /// stored bytes, nil if not.
    public func installWindow(_ i: Int, _ window: [UInt8]) -> [UInt8]? {
        guard let stored = storedWindow(i), window.count == windowLength(i) else { return nil }
        let bytes = LayerIndexWriter.storedWindow(window)
        guard bytes.count == stored.range.count,
              bytes.withUnsafeBytes({ IndexWindows.matches($0, checksum: stored.checksum) }) else { return nil }
        IndexWindows.store(bytes, at: stored.range.lowerBound, indexPath: file.path)
        return bytes
    }

    /// The windows section, as offsets in the file.
    public var windowsSection: Range<Int> {
        windowsOffset..<(windowsOffset + IndexFormat.windows.count(in: bytes))
    }

    /// Where checkpoint `i`'s stored window is in the file and the checksum its record holds;
    /// nil when it has none (a copy frame, a content span, the stream's start).
    public func storedWindow(_ i: Int) -> (range: Range<Int>, checksum: UInt32)? {
        typealias C = IndexFormat.Checkpoint
        let r = checkpointsOffset + i * C.size
        let length = Int(bytes.u32(r, C.storedWindowLength))
        guard length > 0, bytes.u8(r, C.source) == IndexFormat.sourceBlob, !contentSpans else { return nil }
        let start = windowsOffset + Int(bytes.u64(r, C.windowOffset))
        return (start..<(start + length), bytes.u32(r, C.windowChecksum))
    }

    /// Content spans: how many decoded bytes of checkpoint `i`'s member precede its chunk.
    public func contentSkip(_ i: Int) -> UInt64 {
        bytes.u64(checkpointsOffset + i * IndexFormat.Checkpoint.size, IndexFormat.Checkpoint.windowOffset)
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
