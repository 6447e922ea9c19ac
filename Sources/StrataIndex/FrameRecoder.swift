import Dispatch
import StrataCodec
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Re-encodes, while a zstd layer is indexed, the parts of its stream that lie in frames too
/// large to decode per read (a single-frame layer, a zstd bomb) into a copy: independent zstd
/// frames of `frameSize` uncompressed bytes each, with their checksums, appended to the file at
/// `path` (made only if such a frame exists). The index then lists the copy's frames in place of
/// those blob frames, so a read decodes one small frame, and the copy's size follows the data's
/// compressibility instead of its uncompressed size.
///
/// It sees the stream as the tar reader pulls it, span by span (a span: from one of the
/// decoder's checkpoints to the next). A span's first `largestDirectSpan` bytes are held until
/// it is known to be large; from then on each full frame is handed to a worker thread that
/// compresses and writes it (the indexing pass decodes on one core; this uses the other).
final class FrameRecoder: @unchecked Sendable {
    static let frameSize = 4 << 20
    /// Spans up to this size are decoded from the blob per read; larger ones go to the copy.
    static let largestDirectSpan: UInt64 = 8 << 20
    /// zstd level 1: the copy is made during the cold mount.
    static let level: Int32 = 1

    let path: String
    private let decoder: IndexingDecoder
    private let frameSize: Int
    private let largest: UInt64

    // The reading side (the indexing thread).
    private var position: UInt64 = 0
    private var nextCheckpoint = 0
    private var spanStart: UInt64 = 0
    private var inSpan = false
    private var spanIsLarge = false
    private var held: [Chunk] = []   // the current span's frames not yet handed to the worker

    // The worker side: touched only on `queue` (read by `finish` after the queue drained).
    private let queue = DispatchQueue(label: "strata.frame-recoder")
    private var encoder: ZstdFrameEncoder?
    private var file: FileDescriptor?
    private var written: UInt64 = 0
    private var frames: [RecodedCopy.Frame] = []

    // Frame buffers: the reader waits for one when `available` is 0 (the worker is behind).
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var spare: [UnsafeMutableRawBufferPointer] = []
    private var available: Int
    private var failureSlot: Error?

    private final class Chunk: @unchecked Sendable {   // handed from the reader to the worker, then only the worker touches it
        let buffer: UnsafeMutableRawBufferPointer
        let start: UInt64
        var count = 0
        init(_ buffer: UnsafeMutableRawBufferPointer, start: UInt64) { self.buffer = buffer; self.start = start }
    }

    init(path: String, decoder: IndexingDecoder, frameSize: Int = FrameRecoder.frameSize,
         largestDirectSpan: UInt64 = FrameRecoder.largestDirectSpan) {
        self.path = path
        self.decoder = decoder
        self.frameSize = frameSize
        largest = largestDirectSpan
        // Frame buffers in existence: those a span holds until it is known to be large, plus
        // two queued for or being compressed.
        available = Int(largestDirectSpan / UInt64(frameSize)) + 3
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    deinit {
        for buffer in spare { buffer.deallocate() }
        for chunk in held { chunk.buffer.deallocate() }
        file?.close()
        pthread_mutex_destroy(&mutex)
        pthread_cond_destroy(&cond)
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        return try body()
    }

    /// The worker's first error (set on the worker, read by the reader).
    private var failure: Error? {
        get { locked { failureSlot } }
        set { locked { failureSlot = newValue } }
    }

    /// Takes the next bytes of the uncompressed stream (just read from `decoder`).
    func take(_ bytes: UnsafeRawBufferPointer) throws {
        var from = 0
        while from < bytes.count {
            var end = bytes.count
            let checkpoints = decoder.checkpoints
            if nextCheckpoint < checkpoints.count {
                let start = checkpoints[nextCheckpoint].uncompressedOffset
                if start <= position {
                    try endSpan()
                    beginSpan()
                    nextCheckpoint += 1
                    continue
                }
                end = Int(min(UInt64(end), UInt64(from) + (start - position)))
            }
            try append(UnsafeRawBufferPointer(rebasing: bytes[from..<end]))
            position += UInt64(end - from)
            from = end
        }
        if let failure = failure { throw failure }
    }

    /// Ends the stream: waits for the worker and returns the copy's frames (none if no span was
    /// large, and then no file was made). The file is closed, not renamed.
    func finish() throws -> RecodedCopy {
        try endSpan()
        queue.sync {}
        file?.close()
        file = nil
        if let failure = failure { throw IndexError("re-encoded copy \(path): \(failure)") }
        return RecodedCopy(frames: frames)
    }

    /// Stops after a failure: waits for the worker and removes what it wrote.
    func abandon() {
        if failure == nil { failure = IndexError("abandoned") }
        for chunk in held { release(chunk.buffer) }
        held = []
        queue.sync {}
        if file != nil {
            file?.close()
            file = nil
            unlink(path)
        }
    }

    private func beginSpan() {
        inSpan = true
        spanStart = position
        spanIsLarge = false
    }

    private func endSpan() throws {
        guard inSpan else { return }
        inSpan = false
        if spanIsLarge {
            for chunk in held where chunk.count > 0 { submit(chunk) }
        } else {
            for chunk in held { release(chunk.buffer) }
        }
        held = []
    }

    private func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard inSpan else {
            if bytes.count > 0 { throw IndexError("\(path): stream bytes before the first checkpoint") }
            return
        }
        var from = 0
        while from < bytes.count {
            if held.last.map({ $0.count == frameSize }) ?? true {
                let chunk = Chunk(acquire(), start: position + UInt64(from))
                held.append(chunk)
            }
            let chunk = held[held.count - 1]
            let n = min(bytes.count - from, frameSize - chunk.count)
            (chunk.buffer.baseAddress! + chunk.count).copyMemory(from: bytes.baseAddress! + from, byteCount: n)
            chunk.count += n
            from += n
            if !spanIsLarge && chunk.start + UInt64(chunk.count) - spanStart > largest { spanIsLarge = true }
            if spanIsLarge {
                // Every full frame goes to the worker; the one being filled stays.
                while let first = held.first, first.count == frameSize {
                    held.removeFirst()
                    submit(first)
                }
            }
        }
    }

    private func submit(_ chunk: Chunk) {
        queue.async { [self] in
            defer { release(chunk.buffer) }
            guard failure == nil else { return }
            do {
                let encoder = try self.encoder ?? ZstdFrameEncoder(level: Self.level)
                self.encoder = encoder
                let frame = try encoder.encode(UnsafeRawBufferPointer(rebasing: chunk.buffer[0..<chunk.count]))
                if file == nil { file = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644) }
                try file!.writeAll(frame, at: written)
                frames.append(RecodedCopy.Frame(uncompressedOffset: chunk.start, uncompressedLength: UInt64(chunk.count),
                                                copyOffset: written, compressedSize: UInt32(frame.count)))
                written += UInt64(frame.count)
            } catch {
                if failure == nil { failure = error }
            }
        }
    }

    private func acquire() -> UnsafeMutableRawBufferPointer {
        pthread_mutex_lock(&mutex)
        defer { pthread_mutex_unlock(&mutex) }
        while available == 0 { pthread_cond_wait(&cond, &mutex) }
        available -= 1
        return spare.popLast() ?? .allocate(byteCount: frameSize, alignment: 64)
    }

    private func release(_ buffer: UnsafeMutableRawBufferPointer) {
        pthread_mutex_lock(&mutex)
        spare.append(buffer)
        available += 1
        pthread_cond_signal(&cond)
        pthread_mutex_unlock(&mutex)
    }
}
