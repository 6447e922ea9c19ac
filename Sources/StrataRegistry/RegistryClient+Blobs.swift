import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import StrataHash
import StrataOCI

extension RegistryClient {
    /// Exactly `range` of the blob: one GET with a single Range (Accept-Encoding: identity),
    /// answered 206 with that Content-Range and that many bytes, else an error (after retries
    /// for a dropped or lying answer). A 200 marks the host as not supporting ranges and throws
    /// `.noRangeSupport` (at once, and for every later ranged read of that host).
    /// `priority`: `.prefetch` for a replayed prefetch list, `.background` for blob completion (see `RegistryPriority`).
    /// `arrived` is called after each piece of the answer with all the bytes so far (from the
    /// range's start again after a retry): a caller may use a prefix before the rest arrives.
    public func blob(_ digest: Digest, range: Range<UInt64>, priority: RegistryPriority = .demand,
                     arrived: ((UnsafeRawBufferPointer) -> Void)? = nil) throws -> [UInt8] {
        if range.isEmpty { return [] }
        let subject = "blob \(digest)"
        guard hostSupportsRanges else { throw noRanges(subject) }
        return try withRetries { _ in
            let exchange = try openRange(digest, from: range.lowerBound, to: range.upperBound, subject: subject,
                                         priority: priority).exchange
            let count = Int(range.count)
            var bytes: [UInt8] = []
            bytes.reserveCapacity(count)
            do {
                while let chunk = try exchange.nextChunk() {
                    guard bytes.count + chunk.count <= count else {
                        exchange.cancel()
                        throw error(.badLength, subject, "more than the \(count) bytes asked for (\(range.lowerBound)..<\(range.upperBound)) arrived")
                    }
                    bytes.append(contentsOf: chunk)
                    if let arrived { bytes.withUnsafeBytes(arrived) }
                }
            } catch let failure as HTTPExchange.Failure {
                throw mapped(failure, subject: "\(subject) bytes \(range.lowerBound)..<\(range.upperBound)")
            }
            guard bytes.count == count else {
                throw error(.badLength, subject, "truncated: \(bytes.count) of the \(count) bytes asked for (\(range.lowerBound)..<\(range.upperBound))")
            }
            return bytes
        }
    }

    /// What a checked 206 answer covers: bytes `from..<end` of a blob of `total` bytes.
    struct RangeAnswer {
        var exchange: HTTPExchange
        var from: UInt64
        var end: UInt64
        var total: UInt64?
    }

    /// Sends `GET Range: bytes=from-(to-1)` and checks the answer's status, Content-Range and
    /// Content-Length. `clipped`: an answer that stops early at the blob's end is fine (streaming).
    func openRange(_ digest: Digest, from: UInt64, to: UInt64, subject: String, clipped: Bool = false,
                   readAhead: Bool = false, priority: RegistryPriority) throws -> RangeAnswer {
        let rangeText = "bytes=\(from)-\(to - 1)"
        let request = RegistryRequest(target: blobPath(digest),
                                      headers: ["Range": rangeText, "Accept-Encoding": "identity"],
                                      subject: subject, maxBytes: Int.max, optional: readAhead, priority: priority)
        let (response, exchange) = try open(request, accept: [200, 206])
        counters.withLock { $0.rangeRequests += 1 }
        if response.statusCode == 200 {
            exchange.cancel()
            RegistryClient.hostsWithoutRanges.withLock { _ = $0.insert(host) }
            throw noRanges(subject)
        }
        let header = response.value(forHTTPHeaderField: "Content-Range") ?? ""
        guard let parsed = RegistryClient.parseContentRange(header) else {
            exchange.cancel()
            throw error(.badRange, subject, "206 with an unusable Content-Range \"\(header)\" for Range \(rangeText)")
        }
        let endsAtBlobEnd = clipped && parsed.total.map { parsed.last + 1 == $0 && $0 < to } ?? false
        guard parsed.first == from, parsed.last == to - 1 || endsAtBlobEnd else {
            exchange.cancel()
            throw error(.badRange, subject, "206 with Content-Range \"\(header)\" for Range \(rangeText)")
        }
        let count = parsed.last - parsed.first + 1
        if let text = response.value(forHTTPHeaderField: "Content-Length"), let declared = UInt64(text), declared != count {
            exchange.cancel()
            throw error(.badLength, subject, "Content-Length \(declared) for Content-Range \"\(header)\"")
        }
        return RangeAnswer(exchange: exchange, from: from, end: parsed.last + 1, total: parsed.total)
    }

    /// "bytes FIRST-LAST/TOTAL" (TOTAL may be "*").
    static func parseContentRange(_ text: String) -> (first: UInt64, last: UInt64, total: UInt64?)? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("bytes ") else { return nil }
        let spec = trimmed.dropFirst("bytes ".count)
        let parts = spec.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return nil }
        let bounds = parts[0].split(separator: "-", omittingEmptySubsequences: false)
        guard bounds.count == 2, let first = UInt64(bounds[0]), let last = UInt64(bounds[1]), first <= last else { return nil }
        let total: UInt64?
        if parts[1] == "*" { total = nil } else {
            guard let t = UInt64(parts[1]), last < t else { return nil }
            total = t
        }
        return (first, last, total)
    }

    private func noRanges(_ subject: String) -> RegistryError {
        error(.noRangeSupport, subject, "the registry (\(host)) ignores Range requests: it answered 200 with the whole blob to a ranged GET")
    }

    /// The whole blob, its sha256 checked against `digest` (and its size against
    /// `expectedSize`): for configs and other small blobs.
    public func blob(_ digest: Digest, expectedSize: Int64? = nil, maxSize: Int = 64 << 20) throws -> [UInt8] {
        let subject = "blob \(digest)"
        guard digest.isVerifiable else { throw error(.invalidInput, subject, "only sha256 blobs can be verified") }
        if let expectedSize, expectedSize > maxSize {
            throw error(.badLength, subject, "\(expectedSize) bytes is more than the \(maxSize) read whole")
        }
        let request = RegistryRequest(target: blobPath(digest), headers: ["Accept-Encoding": "identity"],
                                      subject: subject, maxBytes: maxSize)
        return try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200])
            let bytes = try readAll(exchange, subject: subject)
            try checkLength(response, bytes.count, subject: subject)
            if let expectedSize, bytes.count != expectedSize {
                throw error(.badLength, subject, "\(bytes.count) bytes arrived but the descriptor says \(expectedSize)")
            }
            let actual = Digest.sha256(of: bytes)
            guard actual == digest else {
                throw error(.badDigest, subject, "the registry served content whose digest is \(actual)")
            }
            return bytes
        }
    }

    /// Streams the blob from `offset` to its end, chunks in order, in ranged requests of
    /// `options.streamChunkSize` with the next one already on its way (memory stays bounded).
    /// A dropped or failed request is resumed from the first byte not yet delivered. On a host
    /// without range support it reads the whole blob in one GET and skips up to `offset`.
    /// Does not verify the digest (the caller hashes).
    /// `body` must not call this client itself (it holds a connection while it runs); the
    /// buffer it gets is valid only during the call.
    /// `priority` is `.background` unless a reader waits for this stream (a layer with no index).
    public func streamBlob(_ digest: Digest, from offset: UInt64, priority: RegistryPriority = .background,
                           _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        // The consumer's own errors end the stream as they are: never retried, never wrapped.
        do {
            try stream(digest, from: offset, priority: priority) { bytes in
                do { try body(bytes) } catch { throw ConsumerFailure(error: error) }
            }
        } catch let failure as ConsumerFailure {
            throw failure.error
        }
    }

    private struct ConsumerFailure: Error {
        var error: any Error
    }

    private func stream(_ digest: Digest, from offset: UInt64, priority: RegistryPriority,
                        _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        let subject = "blob \(digest)"
        let chunk = max(64 * 1024, options.streamChunkSize)
        var position = offset
        var total: UInt64?
        var next: RangeAnswer?
        defer { next?.exchange.cancel() }
        var failures = 0
        while hostSupportsRanges {
            if let total, position >= total { return }
            do {
                let current: RangeAnswer
                if let pending = next, pending.from == position {
                    current = pending
                    next = nil
                } else {
                    next?.exchange.cancel()
                    next = nil
                    let end = total.map { min($0, position + chunk) } ?? position + chunk
                    do {
                        current = try openRange(digest, from: position, to: end, subject: subject, clipped: true,
                                                priority: priority)
                    } catch let e as RegistryError where e.status == 416 && total == nil {
                        // Nothing at `position`: fine when it is exactly the blob's end.
                        if try blobSize(digest) == position { return }
                        throw error(.badRange, subject, "offset \(position) is past the end of the blob (416)")
                    }
                }
                // Whatever ends this chunk (the consumer's error too) ends its transfer.
                defer { current.exchange.cancel() }
                if total == nil { total = current.total }
                // Ask for the next chunk now, so the link stays busy while this one is consumed.
                if let total, current.end < total, next == nil {
                    next = try? openRange(digest, from: current.end, to: min(total, current.end + chunk),
                                          subject: subject, clipped: true, readAhead: true, priority: priority)
                }
                var delivered: UInt64 = 0
                let expected = current.end - current.from
                do {
                    while let data = try current.exchange.nextChunk() {
                        guard delivered + UInt64(data.count) <= expected else {
                            current.exchange.cancel()
                            throw error(.badLength, subject, "more bytes than asked for at \(current.from)")
                        }
                        try data.withUnsafeBytes { try body($0) }
                        delivered += UInt64(data.count)
                        position += UInt64(data.count)
                    }
                } catch let failure as HTTPExchange.Failure {
                    throw mapped(failure, subject: "\(subject) at \(position)")
                }
                guard delivered == expected else {
                    throw error(.badLength, subject, "truncated at \(position): \(delivered) of \(expected) bytes")
                }
                failures = 0
                // A server that does not say the total ("*"): a short chunk is the end.
                if total == nil && expected < chunk { return }
            } catch let e as RegistryError where e.kind == .noRangeSupport {
                break
            } catch let e as RegistryError where e.isRetryable && failures < options.retries {
                failures += 1
                counters.withLock { $0.retries += 1 }
                Thread.sleep(forTimeInterval: min(5, options.retryDelay * Double(1 << min(failures - 1, 10))))
            }
        }
        try streamWhole(digest, from: position, subject: subject, priority: priority, body)
    }

    /// The blob's size from a HEAD (Content-Length), nil when the registry does not say.
    public func blobSize(_ digest: Digest) throws -> UInt64? {
        let subject = "blob \(digest)"
        let request = RegistryRequest(method: "HEAD", target: blobPath(digest), subject: subject, maxBytes: 1 << 20)
        return try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200])
            _ = try? exchange.readAll()
            return response.value(forHTTPHeaderField: "Content-Length").flatMap { UInt64($0) }
        }
    }

    /// One plain GET of the whole blob (a host that ignores Range), skipping `offset` bytes;
    /// after a dropped connection it starts over and skips what was delivered.
    private func streamWhole(_ digest: Digest, from offset: UInt64, subject: String, priority: RegistryPriority,
                             _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var position = offset
        let request = RegistryRequest(target: blobPath(digest), headers: ["Accept-Encoding": "identity"],
                                      subject: subject, maxBytes: Int.max, priority: priority)
        try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200])
            defer { exchange.cancel() }
            let declared = response.value(forHTTPHeaderField: "Content-Length").flatMap { UInt64($0) }
            var seen: UInt64 = 0
            do {
                while let data = try exchange.nextChunk() {
                    let start = seen
                    seen += UInt64(data.count)
                    guard seen > position else { continue }
                    let skip = Int(position > start ? position - start : 0)
                    try data.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[skip...])) }
                    position = seen
                }
            } catch let failure as HTTPExchange.Failure {
                throw mapped(failure, subject: "\(subject) at \(seen)")
            }
            if let declared, declared != seen {
                throw error(.badLength, subject, "Content-Length \(declared) but \(seen) bytes arrived")
            }
        }
    }

    /// HEAD of the blob: true on 200, false on 404.
    public func blobExists(_ digest: Digest) throws -> Bool {
        let subject = "blob \(digest)"
        let request = RegistryRequest(method: "HEAD", target: blobPath(digest), subject: subject, maxBytes: 1 << 20)
        return try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200, 404])
            _ = try? exchange.readAll()
            return response.statusCode == 200
        }
    }
}
