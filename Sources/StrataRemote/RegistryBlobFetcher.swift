import Foundation
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem

/// A lazy blob's source: ranged GETs of one blob from the registry. A registry that answers a
/// ranged GET with the whole blob (no range support) is read by streaming from the start and
/// keeping the range. Once its layer failed verification, every fetch fails: nothing more of
/// that blob is served.
public final class RegistryBlobFetcher: BlobFetcher, Sendable {
    public let client: RegistryClient
    public let digest: Digest
    private let failure = Locked<String?>(nil)

    public init(client: RegistryClient, digest: Digest) {
        self.client = client
        self.digest = digest
    }

    /// From now on every fetch throws this (the layer's reads get EIO).
    public func fail(_ message: String) { failure.withLock { $0 = message } }
    public var failed: String? { failure.withLock { $0 } }

    private func checkNotFailed() throws {
        if let message = failed { throw RemoteError("layer \(digest): \(message)") }
    }

    public func fetch(_ range: Range<UInt64>) throws -> [UInt8] {
        try fetch(range, progress: nil)
    }

    public func fetch(_ range: Range<UInt64>, arrived: (UnsafeRawBufferPointer) -> Void) throws -> [UInt8] {
        try withoutActuallyEscaping(arrived) { try fetch(range, progress: $0) }
    }

    private func fetch(_ range: Range<UInt64>, progress: ((UnsafeRawBufferPointer) -> Void)?) throws -> [UInt8] {
        try checkNotFailed()
        do {
            return try client.blob(digest, range: range, priority: Self.priority, arrived: progress)
        } catch let error as RegistryError where error.kind == .noRangeSupport {
            let bytes = try streamed(range)
            if let progress { bytes.withUnsafeBytes(progress) }
            return bytes
        }
    }

    public func stream(from offset: UInt64, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try checkNotFailed()
        try client.streamBlob(digest, from: offset, priority: Self.priority, body)
    }

    /// The background fetch's thread asks with background priority, the prefetch replay's
    /// threads with prefetch priority (on-demand reads get a free connection first); every
    /// other caller is a reader, or a mount waiting for its index.
    static var priority: RegistryPriority {
        Thread.current.threadDictionary[priorityKey] as? RegistryPriority ?? .demand
    }
    static let priorityKey = "strata.registry-priority"

    /// Marks the calling thread as the background fetch's.
    static func markBackgroundThread() { Thread.current.threadDictionary[priorityKey] = RegistryPriority.background }
    /// Marks the calling thread as one of the prefetch replay's.
    static func markPrefetchThread() { Thread.current.threadDictionary[priorityKey] = RegistryPriority.prefetch }

    /// `range` out of a stream of the whole blob (a host without range support).
    private func streamed(_ range: Range<UInt64>) throws -> [UInt8] {
        struct Enough: Error {}
        var out: [UInt8] = []
        out.reserveCapacity(Int(range.count))
        var position: UInt64 = 0
        do {
            try client.streamBlob(digest, from: 0, priority: Self.priority) { chunk in
                let start = position
                position += UInt64(chunk.count)
                let lower = max(start, range.lowerBound), upper = min(position, range.upperBound)
                if lower < upper {
                    out += chunk[Int(lower - start)..<Int(upper - start)]
                }
                if position >= range.upperBound { throw Enough() }
            }
        } catch is Enough {}
        guard out.count == range.count else {
            throw RemoteError("layer \(digest): the registry's stream ended at \(position) bytes, before \(range.upperBound)")
        }
        return out
    }
}

/// A one-line error of this module, naming the layer or image.
public struct RemoteError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
