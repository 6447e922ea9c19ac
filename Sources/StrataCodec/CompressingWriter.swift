import StrataSystem

/// Compresses a stream into a file at its current position, with large sequential writes.
/// gzip: one member; zstd: one frame (or one per `zstdFrameSize` input bytes, so that each gets
/// its own checkpoint when indexed); none: pass-through. `endUnit` cuts members/frames where the
/// caller needs them (eStargz, zstd:chunked), and `onOutput` sees every compressed byte written.
public final class CompressingWriter {
    public let compression: LayerCompression
    public private(set) var compressedBytesWritten: UInt64 = 0
    /// Called with each piece of output after it is written (e.g. to hash the blob as it is made).
    public var onOutput: ((UnsafeRawBufferPointer) -> Void)?
    /// Input bytes taken since the current member/frame began.
    private var unitInput: UInt64 = 0

    private static let outputSize = 256 << 10

    private let file: FileDescriptor
    private let deflater: Deflater?
    private let zstd: ZstdCompressor?
    private let zstdFrameSize: Int?
    private var frameFill = 0
    private let output: UnsafeMutableRawBufferPointer
    private var finished = false

    public init(compression: LayerCompression, file: FileDescriptor, level: Int32? = nil, zstdFrameSize: Int? = nil) throws {
        self.compression = compression
        self.file = file
        self.zstdFrameSize = zstdFrameSize.map { max($0, 1) }
        deflater = compression == .gzip ? try Deflater(level: level ?? 6) : nil
        zstd = compression == .zstd ? try ZstdCompressor(level: level ?? 3) : nil
        output = .allocate(byteCount: compression == .none ? 0 : Self.outputSize, alignment: 16)
    }

    deinit { output.deallocate() }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        precondition(!finished, "write after finish")
        unitInput += UInt64(bytes.count)
        switch compression {
        case .none:
            try emit(bytes)
        case .gzip:
            try deflate(bytes, finish: false)
        case .zstd:
            var from = 0
            while from < bytes.count {
                var count = bytes.count - from
                if let frameSize = zstdFrameSize { count = min(count, frameSize - frameFill) }
                try compressZstd(UnsafeRawBufferPointer(rebasing: bytes[from..<(from + count)]), end: false)
                from += count
                frameFill += count
                if let frameSize = zstdFrameSize, frameFill == frameSize {
                    try compressZstd(UnsafeRawBufferPointer(start: nil, count: 0), end: true)
                    frameFill = 0
                }
            }
        }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Ends the current gzip member or zstd frame, so the next byte written starts a new one that
    /// decodes on its own, at `compressedBytesWritten`. Nothing happens if the current one is
    /// still empty (no empty members or frames are made).
    public func endUnit() throws {
        precondition(!finished, "endUnit after finish")
        guard unitInput > 0 else { return }
        switch compression {
        case .none:
            break
        case .gzip:
            try deflate(UnsafeRawBufferPointer(start: nil, count: 0), finish: true)
            try deflater!.reset()
        case .zstd:
            if frameFill > 0 {
                try compressZstd(UnsafeRawBufferPointer(start: nil, count: 0), end: true)
            }
            frameFill = 0
        }
        unitInput = 0
    }

    /// Ends the stream (gzip trailer / zstd frame end). Does not fsync or close the file.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        // After `endUnit` with nothing since, the stream is complete: no empty trailing member.
        if unitInput == 0 && compressedBytesWritten > 0 { return }
        switch compression {
        case .none:
            break
        case .gzip:
            try deflate(UnsafeRawBufferPointer(start: nil, count: 0), finish: true)
        case .zstd:
            // A stream with frames already closed and nothing since needs no empty trailing frame.
            if frameFill > 0 || compressedBytesWritten == 0 {
                try compressZstd(UnsafeRawBufferPointer(start: nil, count: 0), end: true)
            }
        }
    }

    private func deflate(_ bytes: UnsafeRawBufferPointer, finish: Bool) throws {
        var consumed = 0
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        while true {
            let step = try deflater!.deflate(input: base.map { $0 + consumed }, inputCount: bytes.count - consumed,
                                             output: output.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                             outputCount: output.count, finish: finish)
            consumed += step.consumed
            try emit(UnsafeRawBufferPointer(rebasing: output[0..<step.produced]))
            if finish ? step.ended : (consumed == bytes.count && step.produced < output.count) { return }
        }
    }

    private func compressZstd(_ bytes: UnsafeRawBufferPointer, end: Bool) throws {
        var consumed = 0
        while true {
            let step = try zstd!.compress(input: bytes.baseAddress.map { $0 + consumed }, inputCount: bytes.count - consumed,
                                          output: output.baseAddress!, outputCount: output.count, end: end)
            consumed += step.consumed
            try emit(UnsafeRawBufferPointer(rebasing: output[0..<step.produced]))
            if end ? step.remaining == 0 : (consumed == bytes.count && step.produced < output.count) { return }
        }
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        do {
            try file.writeAll(bytes)
        } catch {
            throw CodecError(kind: .io, message: "\(error)", compressedOffset: compressedBytesWritten)
        }
        compressedBytesWritten += UInt64(bytes.count)
        onOutput?(bytes)
    }
}
