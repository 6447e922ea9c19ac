import StrataSystem

/// A blob's bytes in a file: the whole file (a layout's blob), or `size` bytes at `base` (a
/// member of an image archive, read in place). Reads are clamped to the blob, so a decoder sees
/// the end of the blob where the member ends, as it would at the end of a blob file.
public struct BlobFile: Sendable {
    public let file: FileDescriptor
    public let base: UInt64
    /// nil: to the end of the file.
    public let size: UInt64?

    public init(_ file: FileDescriptor, base: UInt64 = 0, size: UInt64? = nil) {
        self.file = file; self.base = base; self.size = size
    }

    /// Reads up to `buffer.count` bytes at blob offset `offset`; 0 at the end of the blob.
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try file.read(into: clamped(buffer, at: offset), at: base + offset)
    }

    /// Fills the buffer, looping over short reads; fewer bytes only at the end of the blob.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws -> Int {
        try file.readFully(into: clamped(buffer, at: offset), at: base + offset)
    }

    private func clamped(_ buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) -> UnsafeMutableRawBufferPointer {
        guard let size else { return buffer }
        let left = offset >= size ? 0 : Int(clamping: size - offset)
        return left >= buffer.count ? buffer : UnsafeMutableRawBufferPointer(rebasing: buffer[0..<left])
    }
}
