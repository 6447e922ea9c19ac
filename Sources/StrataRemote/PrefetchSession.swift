import Foundation
import StrataIndex
import StrataOCI
import StrataSystem

/// What the prefetch needs of a lazy layer blob (`LazyBlob` conforms).
public protocol PrefetchableBlob: AnyObject, Sendable {
    /// Makes the range present, fetching what is missing (as prefetch, behind on-demand reads).
    func prefetch(_ range: Range<UInt64>) throws
    /// The ranges fetched on demand so far, in the order of their first fetch (append-only).
    var demandOrder: [Range<UInt64>] { get }
}

/// A mount's prefetch: replays the image's prefetch list right after the mount (before the
/// background fill) and records the order of the reads the container makes, into the list
/// kept for the image in the cache.
///
/// The mount calls, with its layers' lazy blobs keyed by layer digest hex:
///   at mount, once the layers are open:   `let p = PrefetchSession(image:cache:blobs:)`, `p.start()`
///   at unmount (before closing blobs):    `p.stop()` (stops replay, records, stores the list)
/// `start` returns at once: replay and recording run on their own threads.
///
/// Recording polls each blob's `demandOrder` (append-only) every `interval`: ranges new since
/// the previous poll are appended to the image's order, so the order across layers is the
/// order of first reads to within one interval. The list is stored every few seconds while it
/// changes (so a mount that is killed keeps most of it) and at `stop`.
public final class PrefetchSession: @unchecked Sendable {
    public let image: Digest
    let cache: LayerCache
    /// Layer digest hex → blob, in image layer order.
    let layers: [(hex: String, blob: any PrefetchableBlob)]
    let interval: Double
    let workers: Int
    private let state = Locked(State())
    /// The index windows the listed ranges' decodes need, for layers whose index was installed
    /// without them (nil: none). Each part of the list is preceded by its windows.
    var windows: IndexWindowPrefetch?

    /// One request of the replay: a blob range, or index windows.
    enum Work {
        case range(PrefetchList.Entry)
        case windows(IndexWindowPrefetch.Piece)
    }

    struct State {
        var stopping = false
        var seen: [String: Int] = [:]          // layer hex → demandOrder entries already recorded
        var recorded: [PrefetchList.Entry] = []
        var dirty = false
        var running = 0                        // threads started and not finished
        var replayed = 0, replayFailures = 0
        var lastStore = 0.0
    }

    /// `blobs`: the image's lazy layers by digest hex (layers that are local or not lazy are simply absent).
    /// Ranges fetched first, before the list's (a TOC's prefetch landmark), cut into pieces of
    /// `extraPiece` bytes in order: the workers fetch them in order, and each piece serves reads
    /// as soon as it lands instead of when a request of several MB ends.
    let extra: [PrefetchList.Entry]
    public static let defaultExtraPiece: UInt64 = 1 << 20

    public init(image: ResolvedImage, cache: LayerCache, blobs: [String: any PrefetchableBlob],
                interval: Double = 0.25, workers: Int = 8, extra: [PrefetchList.Entry] = [],
                extraPiece: UInt64 = PrefetchSession.defaultExtraPiece) {
        self.extra = Self.split(extra, piece: extraPiece)
        self.image = image.manifestDigest
        self.cache = cache
        self.layers = image.layers.compactMap { l in blobs[l.descriptor.digest.hex].map { (l.descriptor.digest.hex, $0) } }
        self.interval = interval
        self.workers = max(1, workers)
    }

    /// The list this mount replays: the one recorded or pulled for the image, nil when none.
    public var list: PrefetchList? { PrefetchList.load(cache: cache, manifest: image) }

    /// Starts the replay of the image's list (if any) and the recording. `afterExtra` runs once
    /// the `extra` ranges (a TOC's landmark) are fetched or failed, at once when there are none:
    /// the mount starts its background fetch then, so it does not share the link with them.
    public func start(afterExtra: (@Sendable () -> Void)? = nil) {
        let listed = (list?.ranges ?? []).filter { e in layers.contains { "sha256:\($0.hex)" == e.layer } }
        let entries = extra.map(Work.range) + Self.plan(listed, windows: windows)
        let next = Locked(0)
        let extraCount = extra.count
        let extraDone = Locked(0)
        if extraCount == 0 { afterExtra?() }
        if !entries.isEmpty {
            for _ in 0..<min(workers, entries.count) {
                spawn { [self] in
                    while !self.isStopping {
                        let i = next.withLock { n in defer { n += 1 }; return n }
                        guard i < entries.count else { return }
                        defer {
                            if i < extraCount, extraDone.withLock({ n in n += 1; return n }) == extraCount { afterExtra?() }
                        }
                        let e: PrefetchList.Entry
                        switch entries[i] {
                        case .windows(let piece):
                            self.windows?.fetch(piece)
                            continue
                        case .range(let range): e = range
                        }
                        guard let blob = self.layers.first(where: { "sha256:\($0.hex)" == e.layer })?.blob else { continue }
                        if self.replay(e.range, of: blob) {
                            self.state.withLock { $0.replayed += 1 }
                        } else {
                            // A failed prefetch costs only speed; the read that needs the bytes fetches (or fails) itself.
                            self.state.withLock { $0.replayFailures += 1 }
                        }
                    }
                }
            }
        }
        spawn { [self] in
            while !self.isStopping {
                Thread.sleep(forTimeInterval: self.interval)
                self.poll()
                let now = Date().timeIntervalSinceReferenceDate
                let due = self.state.withLock { s in s.dirty && now - s.lastStore >= 5 }
                if due { self.store() }
            }
        }
    }

    /// Tries to make a listed range present, again after a pause when the fetch failed (a
    /// registry slow to answer under load, a dropped connection): a range the replay gives up
    /// on is fetched later by the read that needs it, one round trip at a time. Bytes that fail
    /// their digest are not asked for again. False when it never got the range.
    func replay(_ range: Range<UInt64>, of blob: any PrefetchableBlob) -> Bool {
        for attempt in 1...Self.replayAttempts {
            do {
                try blob.prefetch(range)
                return true
            } catch is SpanMismatch {
                return false
            } catch {
                if attempt == Self.replayAttempts || isStopping { return false }
                Thread.sleep(forTimeInterval: Self.replayPause * Double(attempt))
            }
        }
        return false
    }

    static let replayAttempts = 3
    static let replayPause = 0.5

    /// Stops replay and recording (waiting for their threads), then stores what was recorded.
    public func stop() {
        state.withLock { $0.stopping = true }
        state.withLock(when: { $0.running == 0 }) { _ in }
        poll()
        store()
    }

    /// The list is replayed in parts of about this many bytes, each in blob order (joined
    /// where close) after its windows: the start's order is kept to this grain, and ranges of
    /// neighbouring files read at different times share a request.
    static let partSize: UInt64 = 2 << 20

    /// The replay's requests for `listed` (see `partSize`).
    static func plan(_ listed: [PrefetchList.Entry], windows: IndexWindowPrefetch?) -> [Work] {
        var work: [Work] = []
        var seen = Set<[Int]>()
        var part: [PrefetchList.Entry] = []
        var partBytes: UInt64 = 0
        func flush() {
            guard !part.isEmpty else { return }
            if let windows { work += windows.pieces(part, seen: &seen).map(Work.windows) }
            let ordered = part.enumerated().sorted { a, b in
                (a.element.layer, a.element.offset, a.offset) < (b.element.layer, b.element.offset, b.offset)
            }.map(\.element)
            work += coalesce(ordered, gap: mergeGap, limit: defaultExtraPiece).map(Work.range)
            part = []
            partBytes = 0
        }
        for e in listed {
            part.append(e)
            partBytes += e.length
            if partBytes >= partSize { flush() }
        }
        flush()
        return work
    }

    /// Listed ranges closer than this are fetched in one request (the bytes between cost less
    /// than a round trip at the link speeds lazy pulling is for).
    static let mergeGap: UInt64 = 64 << 10

    /// `entries` in order, each joined with the ones right after it of the same layer that start
    /// after it, at most `gap` bytes past its end, while the joined range stays within `limit`:
    /// a list holds spans (one per small file a start read), fetched in few requests.
    static func coalesce(_ entries: [PrefetchList.Entry], gap: UInt64, limit: UInt64) -> [PrefetchList.Entry] {
        RangeJoin.join(entries.map(\.range), gap: gap, limit: limit, joinable: { entries[$0].layer == entries[$1].layer }).map { g in
            PrefetchList.Entry(layer: entries[g.members[0]].layer, offset: g.range.lowerBound, length: g.range.upperBound - g.range.lowerBound)
        }
    }

    /// `entries` with each range cut into consecutive pieces of at most `piece` bytes.
    static func split(_ entries: [PrefetchList.Entry], piece: UInt64) -> [PrefetchList.Entry] {
        guard piece > 0 else { return entries }
        var out: [PrefetchList.Entry] = []
        for e in entries {
            var offset = e.offset
            while offset < e.offset + e.length {
                let length = min(piece, e.offset + e.length - offset)
                out.append(PrefetchList.Entry(layer: e.layer, offset: offset, length: length))
                offset += length
            }
        }
        return out
    }

    /// Ranges replayed so far, and replays that failed.
    public var replayed: (done: Int, failed: Int) { state.withLock { ($0.replayed, $0.replayFailures) } }

    /// Appends what the blobs fetched on demand since the last poll.
    func poll() {
        for (hex, blob) in layers {
            let order = blob.demandOrder
            state.withLock { s in
                let from = s.seen[hex] ?? 0
                guard order.count > from else { return }
                for r in order[from...] where !r.isEmpty {
                    s.recorded.append(PrefetchList.Entry(layer: "sha256:\(hex)", offset: r.lowerBound, length: r.upperBound - r.lowerBound))
                }
                s.seen[hex] = order.count
                s.dirty = true
            }
        }
    }

    /// Merges what this mount recorded into the image's list in the cache.
    func store() {
        let recorded = state.withLock { s -> [PrefetchList.Entry]? in
            guard s.dirty else { return nil }
            s.dirty = false
            s.lastStore = Date().timeIntervalSinceReferenceDate
            return s.recorded
        }
        guard let recorded, !recorded.isEmpty else { return }
        let merged = (list ?? PrefetchList(manifest: image)).merging(recorded)
        do { try merged.store(cache: cache) } catch {
            writeStandardError("strata: prefetch list of \(image): cannot store it: \(error)\n")
        }
    }

    private var isStopping: Bool { state.withLock { $0.stopping } }

    private func spawn(_ body: @escaping @Sendable () -> Void) {
        state.withLock { $0.running += 1 }
        let thread = Thread { [state] in
            RegistryBlobFetcher.markPrefetchThread()
            body()
            state.withLock { $0.running -= 1 }
            state.broadcast()
        }
        thread.name = "strata-prefetch"
        thread.start()
    }
}

extension PrefetchSession {
    /// The prefetch of a registry image's mount: its layers' lazy blobs.
    public convenience init(_ layers: RemoteLayers) {
        self.init(image: layers.image, cache: layers.cache,
                  blobs: Dictionary(layers.layers.map { ($0.digest.hex, $0.lazy as any PrefetchableBlob) }, uniquingKeysWith: { a, _ in a }),
                  extra: layers.layers.flatMap { l in
                      l.tocPrefetch.map { PrefetchList.Entry(layer: "sha256:\(l.digest.hex)", offset: $0.lowerBound, length: $0.upperBound - $0.lowerBound) }
                  })
        let windows = IndexWindowPrefetch(layers)
        if !windows.layers.isEmpty { self.windows = windows }
    }
}
