import StrataSystem

/// Called before a blob's bytes are read from its file: a lazy blob (one fetched from a
/// registry as it is read) makes the range present in the file first, or throws.
public protocol BlobAvailability: Sendable {
    func ensure(_ range: Range<UInt64>) throws
}

/// A blob's bytes in a file: the whole file (a layout's blob), or `size` bytes at `base` (a
/// member of an image archive, read in place). Reads are clamped to the blob, so a decoder sees
/// the end of the blob where the member ends, as it would at the end of a blob file.
/// Or a verified piece of a blob held in memory (`BlobFile(bytes:at:)`): reads outside it see
/// the end of the blob, so a decoder given it reads nothing else.
public struct BlobFile: Sendable {
    public let file: FileDescriptor
    public let base: UInt64
    /// nil: to the end of the file.
    public let size: UInt64?
    /// Asked for every range before it is read (nil: the file holds the whole blob).
    public let availability: (any BlobAvailability)?
    private let memory: BlobMemory?

    public init(_ file: FileDescriptor, base: UInt64 = 0, size: UInt64? = nil, availability: (any BlobAvailability)? = nil) {
        self.file = file; self.base = base; self.size = size; self.availability = availability; memory = nil
    }

    /// The blob bytes [offset, offset + bytes.count), in memory; the caller keeps `bytes` alive
    /// while this is used.
    public init(bytes: UnsafeRawBufferPointer, at offset: UInt64) {
        file = FileDescriptor(rawValue: -1); base = 0; size = nil; availability = nil
        memory = BlobMemory(bytes: bytes, offset: offset)
    }

    /// Reads up to `buffer.count` bytes at blob offset `offset`; 0 at the end of the blob.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        if let memory { return memory.read(into: buffer, at: offset) }
        let target = clamped(buffer, at: offset)
        if let availability, target.count > 0 { try availability.ensure(offset..<(offset + UInt64(target.count))) }
        return try file.read(into: target, at: base + offset)
    }

    /// Fills the buffer, looping over short reads; fewer bytes only at the end of the blob.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        if let memory { return memory.read(into: buffer, at: offset) }
        let target = clamped(buffer, at: offset)
        if let availability, target.count > 0 { try availability.ensure(offset..<(offset + UInt64(target.count))) }
        return try file.readFully(into: target, at: base + offset)
    }

    /// For a blob in memory, its bytes from `offset` to the end of the memory (a decoder reads
    /// them in place); nil for a blob in a file, or an offset the memory does not hold.
    public func bytesInMemory(from offset: UInt64) -> UnsafeRawBufferPointer? {
        guard let memory, offset >= memory.offset, offset - memory.offset < UInt64(memory.bytes.count) else { return nil }
        return UnsafeRawBufferPointer(rebasing: memory.bytes[Int(offset - memory.offset)...])
    }

    private func clamped(_ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> UnsafeMutableRawBufferPointer {
        guard let size else { return buffer }
        let left = offset >= size ? 0 : Int(clamping: size - offset)
        return left >= buffer.count ? buffer : UnsafeMutableRawBufferPointer(rebasing: buffer[0..<left])
    }
}

// @unchecked: read only; the owner keeps the bytes alive and unchanged while it is used.
private final class BlobMemory: @unchecked Sendable {
    let bytes: UnsafeRawBufferPointer
    let offset: UInt64
    init(bytes: UnsafeRawBufferPointer, offset: UInt64) { self.bytes = bytes; self.offset = offset }

    func read(into buffer: UnsafeMutableRawBufferPointer, at position: UInt64) -> Int {
        guard position >= offset, position - offset < UInt64(bytes.count), buffer.count > 0 else { return 0 }
        let start = Int(position - offset)
        let n = min(buffer.count, bytes.count - start)
        buffer.baseAddress!.copyMemory(from: bytes.baseAddress! + start, byteCount: n)
        return n
    }
}
