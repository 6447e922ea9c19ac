import StrataCodec
import StrataHash
import StrataSystem

/// The uncompressed tar stream on its way to the compressor: hashed as it passes (its sha256 is
/// the layer's diff_id) and gathered into large writes, since headers come in 512-byte pieces.
final class TarStream {
    private let compressor: CompressingWriter
    private let hasher = SHA256Hasher()
    private var buffer: [UInt8] = []
    private static let bufferSize = 1 << 20
    private(set) var bytesWritten: UInt64 = 0

    init(compressor: CompressingWriter) {
        self.compressor = compressor
        buffer.reserveCapacity(TarStream.bufferSize)
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        bytesWritten += UInt64(bytes.count)
        if buffer.count + bytes.count > TarStream.bufferSize { try flush() }
        if bytes.count >= TarStream.bufferSize {
            hasher.update(bytes)
            try compressor.write(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    func writeZeros(_ count: Int) throws {
        guard count > 0 else { return }
        try write([UInt8](repeating: 0, count: count))
    }

    /// Ends the compressed stream and returns the hex sha256 of the uncompressed bytes.
    func finish() throws -> String {
        try flush()
        try compressor.finish()
        return hasher.finalizeHex()
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        hasher.update(buffer)
        try compressor.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }
}
