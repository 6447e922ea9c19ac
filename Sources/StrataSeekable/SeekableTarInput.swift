import StrataCodec
import StrataSystem
import StrataTar

/// The source tar for the writers: entries as `TarReader` parses them, with sparse files made
/// ordinary (their holes read as zeros, since neither TOC format describes holes in a way every
/// reader honours) and names checked to be UTF-8 (TOCs are JSON strings).
final class SeekableTarInput {
    private let reader: TarReader
    private var segments: [SparseSegment] = []
    private var segmentIndex = 0
    private var logicalPosition: UInt64 = 0
    private var logicalSize: UInt64 = 0
    private var current: String = ""

    init(source: TarSource) { reader = TarReader(source: source) }

    /// The next entry with `sparseMap` nil and `size` its logical size.
    func next() throws -> TarEntry? {
        guard var entry = try reader.next() else { return nil }
        current = entry.pathString
        for (what, bytes) in [("name", entry.path), ("link target", entry.linkTarget)] where !isUTF8(bytes) {
            throw SeekableError("tar entry '\(current)': \(what) is not UTF-8, which a TOC (JSON) cannot hold")
        }
        logicalPosition = 0
        logicalSize = entry.type == .regular ? entry.size : 0
        segmentIndex = 0
        if let map = entry.sparseMap {
            segments = map
            entry.sparseMap = nil
            entry.storedSize = entry.size
        } else {
            segments = [SparseSegment(offset: 0, length: logicalSize)]
        }
        return entry
    }

    /// The current entry's logical bytes; 0 at its end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard logicalPosition < logicalSize, buffer.count > 0 else { return 0 }
        while segmentIndex < segments.count,
              segments[segmentIndex].offset + segments[segmentIndex].length <= logicalPosition {
            segmentIndex += 1
        }
        let want = Int(min(UInt64(buffer.count), logicalSize - logicalPosition))
        if segmentIndex < segments.count, segments[segmentIndex].offset <= logicalPosition {
            let segment = segments[segmentIndex]
            let n = Int(min(UInt64(want), segment.offset + segment.length - logicalPosition))
            let got = try reader.readData(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
            guard got == n else { throw SeekableError("tar entry '\(current)': data ends early") }
            logicalPosition += UInt64(n)
            return n
        }
        // A hole: zeros up to the next segment or the end.
        let holeEnd = segmentIndex < segments.count ? segments[segmentIndex].offset : logicalSize
        let n = Int(min(UInt64(want), holeEnd - logicalPosition))
        buffer.baseAddress!.initializeMemory(as: UInt8.self, repeating: 0, count: n)
        logicalPosition += UInt64(n)
        return n
    }

    private func isUTF8(_ bytes: [UInt8]) -> Bool {
        Array(String(decoding: bytes, as: UTF8.self).utf8) == bytes
    }
}

/// A layer blob decoded for reading its tar (gzip, zstd or plain).
public final class DecodedTarSource: TarSource {
    private let decoder: IndexingDecoder
    public convenience init(compression: LayerCompression, file: FileDescriptor, size: UInt64) {
        self.init(compression: compression, blob: BlobFile(file), size: size)
    }

    /// `blob` may be a range of its file (a member of an image archive).
    public init(compression: LayerCompression, blob: BlobFile, size: UInt64) {
        // No checkpoints are wanted: spacing beyond any layer.
        decoder = IndexingDecoder(compression: compression, blob: blob, blobSize: size,
                                  checkpointSpacing: 1 << 62, onCompressedBytes: { _ in })
    }
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try decoder.read(into: buffer)
    }
}
