import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The window sources of the indexes installed without their windows, by index file path, and
/// what fetching a window does: fetch, check against the checkpoint's checksum, write into the
/// cache file in place (the hole), use. A torn write only fails its checksum next time and is
/// fetched again, so no fdatasync.
public enum IndexWindows {
    private static let sources = Locked<[String: any IndexWindowSource]>([:])

    public static func register(_ source: any IndexWindowSource, indexPath: String) {
        sources.withLock { $0[indexPath] = source }
    }

    public static func unregister(indexPath: String) {
        _ = sources.withLock { $0.removeValue(forKey: indexPath) }
    }

    public static func source(indexPath: String) -> (any IndexWindowSource)? {
        sources.withLock { $0[indexPath] }
    }

    /// The windows section of an index file from its first bytes (the 256-byte header), as
    /// offsets in the file; nil when `header` is too short or not an index header.
    public static func section(header: [UInt8]) -> Range<UInt64>? {
        typealias H = IndexFormat.Header
        guard header.count >= H.size, header.starts(with: Array("STRATAIX".utf8)) else { return nil }
        return header.withUnsafeBytes { b in
            let start = b.u64(0, H.windows), length = b.u64(0, H.windowsLength)
            let (end, overflow) = start.addingReportingOverflow(length)
            return overflow ? nil : start..<end
        }
    }

    /// The header's size: what must be read before `section(header:)` can answer.
    public static var headerSize: Int { IndexFormat.Header.size }

    /// Fetches the stored window at `range` (file offsets) of checkpoint `checkpoint`, checks
    /// it, writes it into `indexPath` and returns it. A mismatch writes nothing and is an
    /// error naming the layer, the index blob and the checkpoint.
    static func fetch(_ source: any IndexWindowSource, indexPath: String, layer: String, checkpoint: Int,
                      range: Range<Int>, checksum: UInt32) throws -> [UInt8] {
        let bytes: [UInt8]
        do { bytes = try source.indexBytes(UInt64(range.lowerBound)..<UInt64(range.upperBound)) } catch {
            throw IndexError("layer sha256:\(layer): window of checkpoint \(checkpoint) of index blob \(source.indexBlob) cannot be fetched", wrapping: error)
        }
        guard bytes.count == range.count, bytes.withUnsafeBytes({ IndexFormat.windowChecksum($0) }) == checksum else {
            throw IndexError("layer sha256:\(layer): window of checkpoint \(checkpoint) of index blob \(source.indexBlob) does not match its checksum")
        }
        store(bytes, at: range.lowerBound, indexPath: indexPath)
        return bytes
    }

    /// Writes checked window bytes into the cache file in place. Best effort: a file replaced
    /// or removed meanwhile (confirmed, or rejected) only costs the next decode a fetch.
    public static func store(_ bytes: [UInt8], at offset: Int, indexPath: String) {
        guard let fd = try? FileDescriptor.open(indexPath, O_WRONLY) else { return }
        defer { fd.close() }
        try? bytes.withUnsafeBytes { try fd.writeAll($0, at: UInt64(offset)) }
    }

    /// Whether `bytes` are the window checkpoint records with `checksum` hold.
    public static func matches(_ bytes: UnsafeRawBufferPointer, checksum: UInt32) -> Bool {
        IndexFormat.windowChecksum(bytes) == checksum
    }
}
