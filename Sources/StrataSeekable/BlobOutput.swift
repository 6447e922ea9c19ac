import StrataCodec
import StrataHash
import StrataSystem

/// The blob being written: the compressor (cut into members/frames on request), the sha256 of
/// the uncompressed tar (diff_id) and of the blob, and raw writes for footers and skippable frames.
final class BlobOutput {
    let file: FileDescriptor
    let compressor: CompressingWriter
    let blobHasher = SHA256Hasher()
    let diffHasher = SHA256Hasher()
    private(set) var uncompressedSize: UInt64 = 0
    private var rawBytes: UInt64 = 0
    private var pending: [UInt8] = []
    private static let batch = 1 << 20

    init(compression: LayerCompression, file: FileDescriptor, level: Int32) throws {
        self.file = file
        compressor = try CompressingWriter(compression: compression, file: file, level: level)
        let hasher = blobHasher
        compressor.onOutput = { hasher.update($0) }
    }

    /// Where the next compressed byte goes in the blob.
    var position: UInt64 {
        get throws {
            try flush()
            return compressor.compressedBytesWritten + rawBytes
        }
    }

    /// Uncompressed tar bytes; small ones (headers, padding) are gathered into larger writes.
    func write(_ bytes: UnsafeRawBufferPointer) throws {
        uncompressedSize += UInt64(bytes.count)
        diffHasher.update(bytes)
        if bytes.count >= Self.batch {
            try flush()
            try compressor.write(bytes)
        } else {
            pending.append(contentsOf: bytes)
            if pending.count >= Self.batch { try flush() }
        }
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func writeZeros(_ count: Int) throws {
        if count > 0 { try write([UInt8](repeating: 0, count: count)) }
    }

    /// Ends the current member/frame; returns where the next one starts.
    @discardableResult
    func endUnit() throws -> UInt64 {
        try flush()
        try compressor.endUnit()
        return try position
    }

    /// Bytes that are already compressed (footer, skippable frames): outside the tar stream.
    func writeRaw(_ bytes: [UInt8]) throws {
        try flush()
        try bytes.withUnsafeBytes { try file.writeAll($0) }
        blobHasher.update(bytes)
        rawBytes += UInt64(bytes.count)
    }

    /// Ends the compressed stream (raw writes may follow).
    func finishCompression() throws {
        try flush()
        try compressor.finish()
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        try compressor.write(pending)
        pending.removeAll(keepingCapacity: true)
    }

    /// Writes the next `size` bytes of the tar entry `name`'s data as one chunk, hashing them
    /// into `fileHasher` too; the chunk's digest ("sha256:HEX").
    func copy(_ size: UInt64, of name: String, from input: any SeekableEntryInput, buffer: inout [UInt8],
              fileHasher: SHA256Hasher) throws -> String {
        let chunkHasher = SHA256Hasher()
        var left = size
        while left > 0 {
            let n = try buffer.withUnsafeMutableBytes {
                try input.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<Int(min(left, UInt64($0.count)))]))
            }
            guard n > 0 else { throw SeekableError("tar entry '\(name)': data ends early") }
            try buffer.withUnsafeBytes { raw in
                let piece = UnsafeRawBufferPointer(rebasing: raw[0..<n])
                chunkHasher.update(piece); fileHasher.update(piece)
                try write(piece)
            }
            left -= UInt64(n)
        }
        return "sha256:" + chunkHasher.finalizeHex()
    }
}
