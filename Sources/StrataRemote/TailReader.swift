import StrataIndex

/// Reads a layer's TOC through range requests with one round trip where there were two: the
/// first read at the blob's end (the footer) asks for the whole last `tail` bytes, which holds
/// the TOC too when it is small; a TOC that starts before that fetches only what is missing.
/// One mount's TOC read at a time: not shared between threads.
final class TailReader {
    /// One round trip's worth at 100 Mbit/s and 20 ms, and LazyBlob's smallest request; at
    /// most a sixteenth of the blob, so a small layer is not fetched whole for its TOC.
    static let tailBytes: UInt64 = 256 << 10
    var tail: UInt64 { min(Self.tailBytes, max(size / 16, 4096), size) }

    let size: UInt64
    private let fetch: (Range<UInt64>) throws -> [UInt8]
    /// Bytes [start, size) of the blob, once fetched.
    private var start: UInt64
    private var bytes: [UInt8] = []

    init(size: UInt64, fetch: @escaping (Range<UInt64>) throws -> [UInt8]) {
        self.size = size
        self.fetch = { range in
            let got = try fetch(range)
            guard got.count == Int(range.upperBound - range.lowerBound) else {
                throw IndexError("bytes \(range.lowerBound)..<\(range.upperBound): got \(got.count) bytes")
            }
            return got
        }
        start = size
    }

    func read(_ range: Range<UInt64>) throws -> [UInt8] {
        guard range.upperBound <= size, !range.isEmpty else { return try fetch(range) }
        if range.lowerBound >= start {
            return Array(bytes[Int(range.lowerBound - start)..<Int(range.upperBound - start)])
        }
        if bytes.isEmpty {
            // Nothing held yet: only a read near the end is worth widening.
            guard size - range.upperBound < tail else { return try fetch(range) }
            let from = min(range.lowerBound, size - tail)
            bytes = try fetch(from..<size)
            start = from
        } else if range.upperBound >= start {
            bytes = try fetch(range.lowerBound..<start) + bytes
            start = range.lowerBound
        } else {
            return try fetch(range)
        }
        return Array(bytes[Int(range.lowerBound - start)..<Int(range.upperBound - start)])
    }
}
