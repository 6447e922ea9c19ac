/// Ranges close together fetched in one request: the one rule the prefetch replay's blob
/// ranges and their index windows share.
enum RangeJoin {
    /// `ranges` in order, each joined to the group before it when `joinable(first member, it)`,
    /// it starts at or after the group's start and at most `gap` past its end, and the joined
    /// range stays within `limit`. The groups in order: their joined range and members' indices.
    static func join(_ ranges: [Range<UInt64>], gap: UInt64, limit: UInt64,
                     joinable: (Int, Int) -> Bool = { _, _ in true }) -> [(range: Range<UInt64>, members: [Int])] {
        var out: [(range: Range<UInt64>, members: [Int])] = []
        for (i, r) in ranges.enumerated() {
            if let last = out.last, joinable(last.members[0], i), r.lowerBound >= last.range.lowerBound,
               r.lowerBound <= last.range.upperBound + gap, max(last.range.upperBound, r.upperBound) - last.range.lowerBound <= limit {
                out[out.count - 1].range = last.range.lowerBound..<max(last.range.upperBound, r.upperBound)
                out[out.count - 1].members.append(i)
            } else {
                out.append((r, [i]))
            }
        }
        return out
    }
}
