import StrataSystem

/// A blob read front to back in large chunks. Each chunk goes to `onBytes` as soon as it is read,
/// so every byte of the blob is seen exactly once and in order, whatever the decoder does with it.
/// The last `history` consumed bytes stay in memory (`pointer(at:)`, `unconsume`): isa-l reads
/// a few bytes past a block boundary or the end of a member.
final class BlobReader {
    static let history = 1024

    /// pread-like: fills some of the buffer from the offset, returns 0 at end of data.
    typealias Source = (UnsafeMutableRawBufferPointer, UInt64) throws -> Int

    let size: UInt64
    private let source: Source
    private let onBytes: (UnsafeRawBufferPointer) -> Void
    private let storage: UnsafeMutableRawBufferPointer
    private var start = 0
    private var end = 0
    private var storageOffset: UInt64 = 0

    init(size: UInt64, chunkSize: Int, source: @escaping Source, onBytes: @escaping (UnsafeRawBufferPointer) -> Void) {
        self.size = size
        self.source = source
        self.onBytes = onBytes
        storage = .allocate(byteCount: chunkSize, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Blob offset of the first unconsumed byte.
    var offset: UInt64 { storageOffset + UInt64(start) }
    /// Blob offset just past the bytes read so far (where the data ends if `fill` failed).
    var readOffset: UInt64 { storageOffset + UInt64(end) }
    var available: Int { end - start }
    var bytes: UnsafeMutablePointer<UInt8> { (storage.baseAddress! + start).assumingMemoryBound(to: UInt8.self) }
    var capacity: Int { storage.count }

    func consume(_ count: Int) {
        precondition(count <= available)
        start += count
    }

    /// Gives back the last `count` consumed bytes (count ≤ `history`).
    func unconsume(_ count: Int) {
        precondition(count <= start)
        start -= count
    }

    /// The bytes from blob offset `offset` to `readOffset`, if still in memory (offset ≥ offset − `history`).
    func pointer(at offset: UInt64) -> UnsafeMutablePointer<UInt8>? {
        guard offset >= storageOffset, offset <= readOffset else { return nil }
        return (storage.baseAddress! + Int(offset - storageOffset)).assumingMemoryBound(to: UInt8.self)
    }

    /// Reads blob bytes again, for a decoder that has to go back (not passed to `onBytes`).
    func reread(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        do {
            return try source(buffer, offset)
        } catch let error as CodecError {
            throw error
        } catch {
            throw CodecError(kind: .io, message: "\(error)", compressedOffset: offset)
        }
    }

    /// Makes at least `count` bytes available (count ≤ capacity − history); false if the blob
    /// ends first, in which case what it has stays available.
    func fill(atLeast count: Int) throws -> Bool {
        precondition(count <= storage.count - Self.history)
        while available < count {
            if readOffset >= size { return false }
            let keep = min(start, Self.history)
            if start > keep {
                // Keep the unconsumed tail (and the history before it) contiguous with what comes next.
                let drop = start - keep
                storage.baseAddress!.copyMemory(from: storage.baseAddress! + drop, byteCount: end - drop)
                storageOffset += UInt64(drop)
                start = keep
                end -= drop
            }
            let room = min(storage.count - end, Int(clamping: size - readOffset))
            let target = UnsafeMutableRawBufferPointer(rebasing: storage[end..<(end + room)])
            let n: Int
            do {
                n = try source(target, readOffset)
            } catch let error as CodecError {
                throw error
            } catch {
                throw CodecError(kind: .io, message: "\(error)", compressedOffset: readOffset)
            }
            if n == 0 {
                throw CodecError(kind: .truncated, message: "blob file ends before its size \(size)", compressedOffset: readOffset)
            }
            onBytes(UnsafeRawBufferPointer(rebasing: storage[end..<(end + n)]))
            end += n
        }
        return true
    }
}

extension BlobReader {
    /// A reader over bytes in memory (in-memory `decompress`).
    convenience init(bytes: [UInt8]) {
        let chunk = min(1 << 20, max(bytes.count, 128 << 10))
        self.init(size: UInt64(bytes.count), chunkSize: chunk, source: { buffer, offset in
            let from = Int(offset)
            let n = min(buffer.count, bytes.count - from)
            if n > 0 { bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + from, byteCount: n) } }
            return n
        }, onBytes: { _ in })
    }
}

/// Reads with pread, turning a system error into a `CodecError` at that offset.
@inline(__always)
func preadChecked(_ file: BlobFile, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
    do {
        return try file.read(into: buffer, at: offset)
    } catch {
        throw CodecError(kind: .io, message: "\(error)", compressedOffset: offset)
    }
}

@inline(__always)
func preadChecked(_ file: FileDescriptor, into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
    try preadChecked(BlobFile(file), into: buffer, at: offset)
}
