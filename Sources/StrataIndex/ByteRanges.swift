/// A set of byte offsets as sorted, disjoint, non-adjacent ranges (what a lazy blob holds).
public struct ByteRanges: Sendable, Equatable {
    public private(set) var ranges: [Range<UInt64>] = []

    public init(_ ranges: [Range<UInt64>] = []) {
        for r in ranges { insert(r) }
    }

    /// Bytes in the set.
    public var count: UInt64 { ranges.reduce(0) { $0 + ($1.upperBound - $1.lowerBound) } }

    /// The first range ending after `offset`.
    private func firstEnding(after offset: UInt64) -> Int {
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound <= offset { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public mutating func insert(_ r: Range<UInt64>) {
        guard !r.isEmpty else { return }
        // Ranges touching or overlapping `r` merge with it.
        var lo = 0, hi = ranges.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if ranges[mid].upperBound < r.lowerBound { lo = mid + 1 } else { hi = mid }
        }
        var end = lo
        var merged = r
        while end < ranges.count && ranges[end].lowerBound <= r.upperBound {
            merged = min(merged.lowerBound, ranges[end].lowerBound)..<max(merged.upperBound, ranges[end].upperBound)
            end += 1
        }
        ranges.replaceSubrange(lo..<end, with: [merged])
    }

    /// Removes `r` from the set.
    public mutating func remove(_ r: Range<UInt64>) {
        guard !r.isEmpty, overlaps(r) else { return }
        var out: [Range<UInt64>] = []
        for x in ranges {
            if x.upperBound <= r.lowerBound || x.lowerBound >= r.upperBound {
                out.append(x)
                continue
            }
            if x.lowerBound < r.lowerBound { out.append(x.lowerBound..<r.lowerBound) }
            if x.upperBound > r.upperBound { out.append(r.upperBound..<x.upperBound) }
        }
        ranges = out
    }

    public func contains(_ r: Range<UInt64>) -> Bool {
        if r.isEmpty { return true }
        let i = firstEnding(after: r.lowerBound)
        return i < ranges.count && ranges[i].lowerBound <= r.lowerBound && ranges[i].upperBound >= r.upperBound
    }

    public func overlaps(_ r: Range<UInt64>) -> Bool {
        let i = firstEnding(after: r.lowerBound)
        return i < ranges.count && ranges[i].lowerBound < r.upperBound
    }

    /// The parts of `r` not in the set, in order.
    public func missing(in r: Range<UInt64>) -> [Range<UInt64>] {
        var out: [Range<UInt64>] = []
        var at = r.lowerBound
        var i = firstEnding(after: at)
        while at < r.upperBound {
            if i < ranges.count && ranges[i].lowerBound <= at {
                at = ranges[i].upperBound
                i += 1
                continue
            }
            let next = i < ranges.count ? min(ranges[i].lowerBound, r.upperBound) : r.upperBound
            out.append(at..<next)
            at = next
        }
        return out
    }
}
