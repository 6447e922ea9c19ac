import StrataSystem

/// Where a cache file (layer index, merged tree) is written: memory, or a file, into which the
/// writers stream their records as they are made, so that writing one holds a few megabytes
/// rather than all of its records.
public final class CacheFileSink {
    public private(set) var memory: [UInt8] = []
    public let file: FileDescriptor?

    public init(file: FileDescriptor? = nil) { self.file = file }

    public func write(_ b: UnsafeRawBufferPointer, at offset: Int) throws {
        guard b.count > 0 else { return }
        if let file { try file.writeAll(b, at: UInt64(offset)); return }
        if memory.count < offset + b.count { memory.append(contentsOf: repeatElement(0, count: offset + b.count - memory.count)) }
        memory.withUnsafeMutableBytes { ($0.baseAddress! + offset).copyMemory(from: b.baseAddress!, byteCount: b.count) }
    }

    public func write(_ bytes: [UInt8], at offset: Int) throws {
        try bytes.withUnsafeBytes { try write($0, at: offset) }
    }

    /// The checksum (`fileChecksum`, nothing skipped) of `count` bytes at `offset`, read back in chunks
    /// from a file (its page cache, not this process's memory).
    public func checksum(at offset: Int, count: Int) throws -> UInt64 {
        var sum = ChecksumStream(count: count)
        try readBack(at: offset, count: count) { sum.feed($0) }
        return sum.finalize()
    }

    /// Hands `count` bytes written at `offset` to `visit`, in order: from memory at once, or read
    /// back from the file a megabyte at a time (each piece but the last a multiple of 8 bytes).
    public func readBack(at offset: Int, count: Int, _ visit: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let file else {
            return try memory.withUnsafeBytes { try visit(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + count)])) }
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done = 0
        while done < count {
            let n = min(buffer.count, count - done)
            try buffer.withUnsafeMutableBytes { b in
                let chunk = UnsafeMutableRawBufferPointer(rebasing: b[0..<n])
                guard try file.readFully(into: chunk, at: UInt64(offset + done)) == n else {
                    throw IndexError("cache file: short read at offset \(offset + done)")
                }
                try visit(UnsafeRawBufferPointer(chunk))
            }
            done += n
        }
    }
}

/// `fileChecksum` (with nothing skipped) computed over a run of bytes fed in pieces, each but
/// the last a multiple of 8 bytes long; the run's length is known from the start.
struct ChecksumStream {
    private var h: UInt64
    private var tail: UInt64 = 0
    private var shift: UInt64 = 0

    init(count: Int) { h = 0x9E37_79B9_7F4A_7C15 ^ UInt64(count) }

    mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        precondition(shift == 0, "only the last piece may end off a word")
        let words = bytes.count / 8
        var i = 0
        while i < words {
            var w = bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)
            w = w &* 0x87C3_7B91_1142_53D5
            w = (w << 31) | (w >> 33)
            h = (h ^ w) &* 0x4CF5_AD43_2745_937F
            h = (h << 27) | (h >> 37)
            i += 1
        }
        for j in (words * 8)..<bytes.count {
            tail |= UInt64(bytes[j]) << shift
            shift += 8
        }
    }

    func finalize() -> UInt64 {
        var h = (self.h ^ tail) &* 0x4CF5_AD43_2745_937F
        h ^= h >> 29
        return h
    }
}

/// Appends fixed-size records (or bytes) to one section of a file being written through a
/// `CacheFileSink`, a quarter megabyte at a time.
public final class SectionStream {
    let sink: CacheFileSink
    private var offset: Int
    private let buffer: UnsafeMutableRawBufferPointer
    private var used = 0
    public private(set) var written = 0
    static let chunk = 256 << 10

    public init(_ sink: CacheFileSink, at offset: Int) {
        self.sink = sink
        self.offset = offset
        buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SectionStream.chunk, alignment: 16)
    }

    deinit { buffer.deallocate() }

    /// Appends a zeroed record of `size` bytes and fills it (`fill` gets the record alone).
    @inline(__always)
    public func record(_ size: Int, _ fill: (UnsafeMutableRawBufferPointer) -> Void) throws {
        if used + size > buffer.count { try flush() }
        let r = UnsafeMutableRawBufferPointer(rebasing: buffer[used..<(used + size)])
        r.initializeMemory(as: UInt8.self, repeating: 0)
        fill(r)
        used += size
        written += size
    }

    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        var rest = bytes
        while !rest.isEmpty {
            if used == buffer.count { try flush() }
            let n = min(rest.count, buffer.count - used)
            UnsafeMutableRawBufferPointer(rebasing: buffer[used..<(used + n)]).copyMemory(from: UnsafeRawBufferPointer(rebasing: rest[0..<n]))
            used += n
            written += n
            rest = UnsafeRawBufferPointer(rebasing: rest[n...])
        }
    }

    public func flush() throws {
        try sink.write(UnsafeRawBufferPointer(rebasing: buffer[0..<used]), at: offset)
        offset += used
        used = 0
    }
}
