import StrataSystem

/// The readers moving through one layer's stream, told apart by where they read: a read just
/// after (or a little before) where a stream's last read ended continues that stream; any other
/// starts a new one, replacing the least recently used. Several readers of one layer (parallel
/// `tar`s, a runtime's worker threads, replicas of one image) so each keep their own position,
/// current span and read-ahead, instead of one shared position that every other reader resets.
///
/// A stream reads ahead only once it is really streaming: it has read at least a span's worth,
/// and most of the bytes it moved over (a tar walk or a large file). A program loading modules
/// reads small files here and there; its reads continue streams too, but sparsely, and never
/// earn read-ahead: it inflates only what it reads.
struct ReadStreams {
    struct Stream {
        var start: UInt64
        var next: UInt64
        var read: UInt64 = 0
        var span: Int
        var lastUse: UInt64 = 0
        /// The span whose successors were last queued for decoding (once per span).
        var aheadFrom = -1
        /// The span this stream keeps in the cache (only once streaming).
        var pinned: Int?
    }

    /// What a read means for the cache: the span this stream left (unpin it), the one it is on
    /// now (pin it), and the spans to decode ahead. A stream pins its span once it has read
    /// `pinAfter` densely; one-off reads share the cache's common part.
    struct Move {
        var left: Int?
        var entered: Int?
        var readAheadFrom: Int?
        /// Bytes the stream has read so far (with `readAheadFrom`).
        var streamRead: UInt64 = 0
    }

    /// Streams kept per layer; more concurrent readers of one layer share the least recent.
    static let limit = 8
    /// A read this far behind a stream's end still continues it: the kernel sends a reader's
    /// read-ahead and its own reads out of order on several threads.
    static let behind: UInt64 = 1 << 20
    /// A read this far past a stream's end continues it: a tar walk skips files other layers
    /// hide and the tar headers between files.
    static let gap: UInt64 = 2 << 20
    /// A stream that has read this much, densely, keeps its current span in the cache: a span
    /// evicted while its reader is in it would be inflated again from its checkpoint.
    static let pinAfter: UInt64 = 256 << 10

    private(set) var streams: [Stream] = []
    private var clock: UInt64 = 0

    /// Notes a read of [offset, offset + count) in span `span`; `spanBytes` is the typical span
    /// size (read-ahead starts once a stream has read that much).
    mutating func note(offset: UInt64, count: Int, span: Int, spanBytes: UInt64) -> Move {
        clock += 1
        let end = offset + UInt64(count)
        var move = Move()
        let i: Int
        if let found = streams.firstIndex(where: { offset + Self.behind >= $0.next && offset <= $0.next + Self.gap }) {
            i = found
            streams[i].span = span
        } else {
            let fresh = Stream(start: offset, next: end, span: span)
            if streams.count < Self.limit {
                streams.append(fresh)
                i = streams.count - 1
            } else {
                i = streams.indices.min(by: { streams[$0].lastUse < streams[$1].lastUse })!
                move.left = streams[i].pinned
                streams[i] = fresh
            }
        }
        streams[i].lastUse = clock
        streams[i].read += UInt64(count)
        if end > streams[i].next { streams[i].next = end }
        let covered = streams[i].next - streams[i].start
        let dense = streams[i].read * 4 >= covered * 3
        let streaming = dense && streams[i].read >= spanBytes
        let settled = dense && streams[i].read >= min(spanBytes, Self.pinAfter)
        if settled && streams[i].pinned != span {
            if let old = streams[i].pinned { move.left = old }
            move.entered = span
            streams[i].pinned = span
        }
        if streaming && streams[i].aheadFrom != span {
            streams[i].aheadFrom = span
            move.readAheadFrom = span
            move.streamRead = streams[i].read
        }
        return move
    }
}
