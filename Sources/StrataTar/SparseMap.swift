// Sparse maps: the GNU encodings (old GNU 'S' headers, PAX 0.0 / 0.1 / 1.0) and their validation.

enum SparseMap {
    /// Checks the map against the entry and drops empty segments (GNU tar writes a trailing
    /// zero-length one to record the file's size). Returns an error message when invalid.
    static func validate(_ segments: [SparseSegment], realSize: UInt64, storedSize: UInt64)
        -> Result<[SparseSegment], SparseMapError>
    {
        var result: [SparseSegment] = []
        result.reserveCapacity(segments.count)
        var end: UInt64 = 0      // end of the previous segment in the logical file
        var total: UInt64 = 0
        for (i, seg) in segments.enumerated() {
            let (segEnd, overflow) = seg.offset.addingReportingOverflow(seg.length)
            if overflow || segEnd > realSize {
                return .failure(SparseMapError(message: "sparse segment \(i) (offset \(seg.offset), length \(seg.length)) beyond real size \(realSize)"))
            }
            if seg.offset < end {
                return .failure(SparseMapError(message: "sparse segment \(i) at offset \(seg.offset) is out of order or overlaps the previous one"))
            }
            let (t, o) = total.addingReportingOverflow(seg.length)
            if o { return .failure(SparseMapError(message: "sparse map total overflows")) }
            total = t
            end = segEnd
            if seg.length > 0 { result.append(seg) }
        }
        if total != storedSize {
            return .failure(SparseMapError(message: "sparse map covers \(total) bytes but \(storedSize) are stored"))
        }
        return .success(result)
    }

    /// PAX 0.1: "GNU.sparse.map=offset,length,offset,length,...".
    static func parseCommaList(_ value: [UInt8]) -> [SparseSegment]? {
        if value.isEmpty { return [] }
        var numbers: [UInt64] = []
        for part in value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false) {
            guard let n = PaxValue.decimal(Array(part)) else { return nil }
            numbers.append(n)
        }
        guard numbers.count % 2 == 0 else { return nil }
        return stride(from: 0, to: numbers.count, by: 2).map { SparseSegment(offset: numbers[$0], length: numbers[$0 + 1]) }
    }

    /// Old GNU: an array of (offset[12], numbytes[12]) pairs; an entry whose offset field is
    /// empty ends the list. Returns nil on a malformed number.
    static func parseOldGNU(_ block: [UInt8], start: Int, count: Int, into segments: inout [SparseSegment]) -> Bool? {
        for i in 0..<count {
            let base = start + i * 24
            if block[base] == 0 { return true }   // end of list
            guard let off = try? parseNumeric(block[base..<(base + 12)], allowNegative: false),
                  let len = try? parseNumeric(block[(base + 12)..<(base + 24)], allowNegative: false)
            else { return nil }
            segments.append(SparseSegment(offset: UInt64(off), length: UInt64(len)))
        }
        return false
    }
}

struct SparseMapError: Error {
    var message: String
}

/// Incremental parser for the PAX 1.0 map, which precedes the data as newline-terminated
/// decimals: count, then count (offset, length) pairs, padded with NULs to a block.
struct SparseMapTextParser {
    private(set) var numbers: [UInt64] = []
    private var current: UInt64 = 0
    private var digits = 0
    private var expected: UInt64?       // total numbers once the count is known
    let maxNumbers: UInt64              // bound from the data size, so a hostile count cannot run away

    init(dataSize: UInt64) {
        maxNumbers = dataSize / 2       // every number takes at least "0\n"
    }

    var isComplete: Bool { expected.map { UInt64(numbers.count) == $0 } ?? false }

    /// Feeds one block; returns true once the whole map has been read.
    mutating func feed(_ block: [UInt8]) throws(SparseMapError) -> Bool {
        for b in block {
            if isComplete { return true }
            if b == UInt8(ascii: "\n") {
                guard digits > 0 else { throw SparseMapError(message: "malformed sparse map (empty line)") }
                numbers.append(current)
                current = 0
                digits = 0
                if numbers.count == 1 {
                    let (twice, o1) = numbers[0].multipliedReportingOverflow(by: 2)
                    let (total, o2) = twice.addingReportingOverflow(1)
                    guard !o1, !o2, total <= maxNumbers else {
                        throw SparseMapError(message: "sparse map entry count \(numbers[0]) too large for the entry")
                    }
                    expected = total
                }
            } else if b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") {
                let (m, o1) = current.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
                guard !o1, !o2 else { throw SparseMapError(message: "sparse map number overflows") }
                current = s
                digits += 1
            } else {
                throw SparseMapError(message: "malformed sparse map (unexpected byte \(b))")
            }
        }
        return isComplete
    }

    var segments: [SparseSegment] {
        guard numbers.count >= 1 else { return [] }
        return stride(from: 1, to: numbers.count - 1, by: 2).map {
            SparseSegment(offset: numbers[$0], length: numbers[$0 + 1])
        }
    }
}
