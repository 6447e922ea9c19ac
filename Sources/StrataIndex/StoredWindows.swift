import StrataCodec
import StrataSystem

/// The windows section of an index being built: each checkpoint's window deflated
/// (`LayerIndexWriter.storedWindow`) as soon as the decoder settles it, and written to a spill
/// file when there is one. A 4 GiB layer has 4,096 windows of 32 KiB; held raw until the index
/// is written they were most of a cold mount's peak memory.
final class StoredWindows {
    /// Where one checkpoint's stored window is in the section.
    struct Record {
        var offset: UInt64
        var storedLength: UInt32
        var windowLength: UInt32
        var checksum: UInt32
    }

    /// An empty window's checksum, as records of checkpoints without one carry it.
    static let emptyChecksum = [UInt8]().withUnsafeBytes { IndexFormat.windowChecksum($0) }

    private let sink: CacheFileSink
    private let compressor = LayerIndexWriter.windowCompressor()
    private let stream: SectionStream
    /// By checkpoint number; nil: no window stored for it (yet).
    private var records: [Record?] = []
    /// The decoder's first checkpoint whose window has not been taken.
    private var taken = 0

    /// `spill`: a file (already unlinked) the stored windows go to; nil: memory.
    init(spill: FileDescriptor? = nil) {
        sink = CacheFileSink(file: spill)
        stream = SectionStream(sink, at: 0)
    }

    var length: Int { stream.written }

    func record(_ checkpoint: Int) -> Record? {
        checkpoint < records.count ? records[checkpoint] : nil
    }

    /// Stores `window` as checkpoint `checkpoint`'s.
    @discardableResult
    func store(_ checkpoint: Int, _ window: [UInt8]) throws -> Record {
        let stored = LayerIndexWriter.storedWindow(window, with: compressor)
        let record = Record(offset: UInt64(stream.written), storedLength: UInt32(stored.count),
                            windowLength: UInt32(window.count),
                            checksum: stored.withUnsafeBytes { IndexFormat.windowChecksum($0) })
        try stored.withUnsafeBytes { try stream.append($0) }
        if records.count <= checkpoint { records.append(contentsOf: repeatElement(nil, count: checkpoint + 1 - records.count)) }
        records[checkpoint] = record
        return record
    }

    /// Stores the windows the decoder has settled since the last call (`all`: after its `finish`).
    func take(from decoder: IndexingDecoder, all: Bool = false) throws {
        taken = try decoder.takeWindows(from: taken, all: all) { try store($0, $1) }
    }

    /// Writes the section into `target` at `offset` (a spill file is read back from the page
    /// cache it was just written to).
    func write(into target: CacheFileSink, at offset: Int) throws {
        try stream.flush()
        var done = 0
        try sink.readBack(at: 0, count: stream.written) { piece in
            try target.write(piece, at: offset + done)
            done += piece.count
        }
    }
}
