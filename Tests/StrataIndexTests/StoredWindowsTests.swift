import Testing
import StrataCodec
import StrataSystem
import StrataTar
import StrataTestSupport
@testable import StrataIndex

/// The checkpoints' windows are stored as the decoder settles them, not held to the end.
@Suite struct StoredWindowsTests {
    /// A gzip layer of 9 MiB of mixed content: about nine checkpoints with windows.
    func layer(_ s: Scratch) throws -> LayerBlob {
        let big = content(9 << 20, seed: 11)
        let tar = try TarWriter.archive([(entry("big", size: big.count), big), (entry("small", size: 5), Array("tail\n".utf8))])
        return try s.blob(Gzip.compress(tar), .gzip)
    }

    @Test func theDecoderHoldsOneWindowAtATime() throws {
        let s = Scratch()
        let blob = try layer(s)
        let file = try blob.open()
        defer { file.file.close() }
        let decoder = IndexingDecoder(compression: .gzip, blob: file, blobSize: blob.size, checkpointSpacing: 1 << 20,
                                      onCompressedBytes: { _ in })
        let windows = StoredWindows()
        let source = DecoderTarSource(decoder, windows: windows)
        var mostHeld = 0
        var buffer = [UInt8](repeating: 0, count: 256 << 10)
        while try buffer.withUnsafeMutableBytes({ try source.read(into: $0) }) > 0 {
            mostHeld = max(mostHeld, decoder.checkpoints.filter { !$0.window.isEmpty }.count)
        }
        try decoder.finish()
        try windows.take(from: decoder, all: true)
        #expect(decoder.checkpoints.count >= 8)
        #expect(mostHeld <= 1)
        #expect(decoder.checkpoints.allSatisfy { $0.window.isEmpty })
        let stored = (0..<decoder.checkpoints.count).compactMap { windows.record($0) }
        #expect(stored.count == decoder.checkpoints.count - 1)   // the first one has no window
        #expect(stored.allSatisfy { $0.windowLength == 32 << 10 })
    }

    /// The cache's build spills the windows to a file; the index comes out byte for byte as one
    /// built in memory, and as one written from the index's own records (an index published by
    /// an earlier version is confirmed by comparing bytes).
    @Test func aSpilledIndexIsTheSameAsOneBuiltInMemory() throws {
        let s = Scratch()
        let blob = try layer(s)
        let memory = try IndexBuilder.build(blob)
        let cache = try LayerCache(directory: "\(s.path)/cache")
        let (index, built) = try cache.index(blob)
        #expect(built)
        let written = try FileIO.readAll(cache.indexPath(digestHex: blob.digestHex))
        #expect(written == memory)
        // And as the writer makes it from the whole checkpoints, as before windows were stored early.
        #expect(try IndexForgery.rewrite(index, alteringWindowOf: nil) == written)
        #expect(index.checkpointCount >= 8)
        let names = FileIO.directoryEntries("\(s.path)/cache/\(LayerCache.Kind.index.directory)")
        #expect(names == [blob.digestHex], "no spill file is left")
    }
}
