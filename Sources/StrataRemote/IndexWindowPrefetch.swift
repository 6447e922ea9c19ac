import Foundation
import StrataIndex
import StrataSystem

/// Fetches the index windows the prefetch list's decodes will need (`PrefetchSession` puts
/// each part of the list after its windows), for the layers whose index was installed without its windows: for each
/// listed range, the checkpoints whose compressed spans it touches; their windows not present
/// yet, coalesced (gaps up to `maximumGap`, pieces up to `maximumPiece`), fetched by a few
/// workers, each window checked against its checkpoint's checksum and written into the cache
/// index file. Failures cost only speed:
/// a decode fetches (or fails on) its window itself.
final class IndexWindowPrefetch: Sendable {
    /// A layer whose windows come from a registry: its index and where they come from.
    struct Layer: Sendable {
        var name: String   // "sha256:<hex>", as prefetch entries name layers
        var index: LayerIndex
        var indexPath: String
        var source: any IndexWindowSource
    }

    let layers: [Layer]
    let workers: Int
    /// Windows are about 15 KiB; on a link-bound start a window between two wanted ones costs
    /// more than the request it saves, so only neighbours are joined.
    static let maximumGap = 1 << 10
    static let maximumPiece = 1 << 20

    /// Whether a mount makes missing windows from the span before (`LayerData`): then only the
    /// first window of each run of listed neighbouring spans is fetched, and every
    /// `LayerData.windowDerivationDepth`-th after it, so no window is made through more spans.
    let derives: Bool

    init(layers: [Layer], workers: Int = 4, derives: Bool = false) {
        self.layers = layers
        self.workers = max(1, workers)
        self.derives = derives
    }

    /// The mount's layers with a window source.
    convenience init(_ remote: RemoteLayers) {
        self.init(layers: remote.layers.compactMap { l in
            guard let source = l.windowSource, let index = remote.cache.load(digestHex: l.digest.hex, verify: false) else { return nil }
            return Layer(name: l.digest.description, index: index, indexPath: remote.cache.indexPath(digestHex: l.digest.hex), source: source)
        }, derives: true)
    }

    /// One request: a file range of one layer's index and the windows (checkpoints) in it.
    struct Piece: Equatable, Sendable {
        var layer: Int
        var range: Range<Int>
        var checkpoints: [Int]
    }

    /// Fetches the windows `entries` need (see the type); returns once every piece is done.
    func run(_ entries: [PrefetchList.Entry]) {
        var seen = Set<[Int]>()
        let pieces = self.pieces(entries, seen: &seen)
        guard !pieces.isEmpty else { return }
        let next = Locked(0)
        let group = DispatchGroup()
        for _ in 0..<min(workers, pieces.count) {
            group.enter()
            Thread.detachNewThread { [self] in
                defer { group.leave() }
                while true {
                    let i = next.withLock { n in defer { n += 1 }; return n }
                    guard i < pieces.count else { return }
                    fetch(pieces[i])
                }
            }
        }
        group.wait()
    }

    /// The coalesced requests for `entries`, in the order the list first needs them; `seen`:
    /// windows already asked for (by an earlier part of the list), skipped and added to.
    func pieces(_ entries: [PrefetchList.Entry], seen: inout Set<[Int]>) -> [Piece] {
        var wanted: [Int: [(range: Range<Int>, checkpoint: Int)]] = [:]
        var order: [Int] = []
        var new: [(layer: Int, checkpoint: Int)] = []
        for e in entries where e.length > 0 {
            guard let l = layers.firstIndex(where: { $0.name == e.layer }) else { continue }
            let index = layers[l].index
            guard index.spanCount == index.checkpointCount, index.spanCount > 0, index.copySize == 0 else { continue }
            for i in Self.checkpoints(index, touching: e.offset..<(e.offset + e.length)) where seen.insert([l, i]).inserted {
                new.append((l, i))
            }
        }
        for (l, i) in new {
            let index = layers[l].index
            guard let window = index.storedWindow(i), !present(window, in: layers[l]) else { continue }
            if derives && Self.derivable(i, index: index, listed: { seen.contains([l, $0]) }) { continue }
            if wanted[l] == nil { order.append(l) }
            wanted[l, default: []].append((window.range, i))
        }
        return order.flatMap { l in Self.coalesce(wanted[l] ?? []).map { Piece(layer: l, range: $0.range, checkpoints: $0.checkpoints) } }
    }

    /// The checkpoints whose decodes read `range`'s spans (a published index has one span per
    /// checkpoint, in blob order). A listed range is whole spans (`LazyBlob` records them so),
    /// and consecutive spans may share a byte: a range starting on that byte is the later
    /// span's, and one ending on it the earlier's. Taking the neighbour in either case
    /// fetched up to three windows for one span.
    static func checkpoints(_ index: LayerIndex, touching range: Range<UInt64>) -> ClosedRange<Int> {
        let first = index.spanIndex(containing: range.lowerBound)
        var last = index.spanIndex(containing: range.upperBound - 1)
        if last > first && index.spanRange(last - 1).upperBound >= range.upperBound { last -= 1 }
        return first...max(first, last)
    }

    /// Whether checkpoint `i`'s window will be made from the listed span before it: that span
    /// holds the whole window, and `i` is not at a multiple of the derivation depth into its
    /// run of listed checkpoints (those windows are fetched, to bound the chain).
    static func derivable(_ i: Int, index: LayerIndex, listed: (Int) -> Bool) -> Bool {
        guard listed(i - 1), index.windowLiesInSpanBefore(i) else { return false }
        var run = 1   // listed checkpoints right before `i`
        while i - run > 0 && listed(i - run - 1) { run += 1 }
        return run % LayerData.windowDerivationDepth != 0
    }

    /// Windows sorted by place, joined while the gap is small and the piece not too large.
    static func coalesce(_ windows: [(range: Range<Int>, checkpoint: Int)]) -> [(range: Range<Int>, checkpoints: [Int])] {
        let sorted = windows.sorted { $0.range.lowerBound < $1.range.lowerBound }
        let groups = RangeJoin.join(sorted.map { UInt64($0.range.lowerBound)..<UInt64($0.range.upperBound) },
                                    gap: UInt64(maximumGap), limit: UInt64(maximumPiece))
        return groups.map { g in (Int(g.range.lowerBound)..<Int(g.range.upperBound), g.members.map { sorted[$0].checkpoint }) }
    }

    /// Whether the window's bytes are in the cache file already.
    private func present(_ window: (range: Range<Int>, checksum: UInt32), in layer: Layer) -> Bool {
        guard let bytes = try? layer.index.file.read(window.range) else { return false }
        return bytes.withUnsafeBytes { IndexWindows.matches($0, checksum: window.checksum) }
    }

    func fetch(_ piece: Piece) {
        let layer = layers[piece.layer]
        guard let bytes = try? layer.source.indexBytes(UInt64(piece.range.lowerBound)..<UInt64(piece.range.upperBound)),
              bytes.count == piece.range.count else { return }
        for i in piece.checkpoints {
            guard let window = layer.index.storedWindow(i) else { continue }
            let part = Array(bytes[(window.range.lowerBound - piece.range.lowerBound)..<(window.range.upperBound - piece.range.lowerBound)])
            // A window that does not match is not written: its decode fetches it again and fails there.
            guard part.withUnsafeBytes({ IndexWindows.matches($0, checksum: window.checksum) }) else { continue }
            IndexWindows.store(part, at: window.range.lowerBound, indexPath: layer.indexPath)
        }
    }
}
