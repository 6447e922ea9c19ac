// PAX extended header records: "LEN KEY=VALUE\n", LEN counting the whole record in decimal.

struct PaxRecord: Equatable {
    var key: String
    var value: [UInt8]
}

struct PaxFormatError: Error {
    var message: String
}

enum PaxRecords {
    /// Parses the data of an 'x'/'g' header. Trailing NUL padding (written by some old tools)
    /// is tolerated; anything else that is not a well-formed record is an error.
    static func parse(_ data: [UInt8]) throws(PaxFormatError) -> [PaxRecord] {
        var records: [PaxRecord] = []
        var pos = 0
        while pos < data.count {
            if data[pos...].allSatisfy({ $0 == 0 }) { break }
            // Length: decimal digits, then one space.
            var lenEnd = pos
            var length = 0
            while lenEnd < data.count, data[lenEnd] >= UInt8(ascii: "0"), data[lenEnd] <= UInt8(ascii: "9") {
                let digit = Int(data[lenEnd] - UInt8(ascii: "0"))
                let (m, o1) = length.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(digit)
                if o1 || o2 { throw PaxFormatError(message: "pax record length overflows") }
                length = s
                lenEnd += 1
            }
            guard lenEnd > pos, lenEnd < data.count, data[lenEnd] == UInt8(ascii: " ") else {
                throw PaxFormatError(message: "malformed pax record length at byte \(pos)")
            }
            let (end, overflow) = pos.addingReportingOverflow(length)
            guard !overflow, end <= data.count, end > lenEnd + 1 else {
                throw PaxFormatError(message: "pax record length \(length) inconsistent with header size")
            }
            guard data[end - 1] == UInt8(ascii: "\n") else {
                throw PaxFormatError(message: "pax record at byte \(pos) does not end where its length says")
            }
            let body = data[(lenEnd + 1)..<(end - 1)]
            guard let eq = body.firstIndex(of: UInt8(ascii: "=")), eq > body.startIndex else {
                throw PaxFormatError(message: "pax record at byte \(pos) has no key")
            }
            let keyBytes = data[body.startIndex..<eq]
            guard let key = String(validating: keyBytes, as: UTF8.self), !key.contains("\0") else {
                throw PaxFormatError(message: "pax record at byte \(pos) has an invalid key")
            }
            records.append(PaxRecord(key: key, value: Array(data[(eq + 1)..<body.endIndex])))
            pos = end
        }
        return records
    }

    /// One encoded record; the length prefix counts its own digits, hence the fixed point.
    static func encode(key: String, value: [UInt8]) -> [UInt8] {
        let payload = Array(" \(key)=".utf8) + value + [UInt8(ascii: "\n")]
        var length = payload.count + 1
        while String(length).utf8.count + payload.count != length {
            length = String(length).utf8.count + payload.count
        }
        return Array(String(length).utf8) + payload
    }

    /// Records sorted by key bytes so that the same entry always encodes the same way.
    static func encode(_ records: [PaxRecord]) -> [UInt8] {
        let sorted = records.sorted { Array($0.key.utf8).lexicographicallyPrecedes(Array($1.key.utf8)) }
        var out: [UInt8] = []
        for r in sorted { out += encode(key: r.key, value: r.value) }
        return out
    }
}

// MARK: - Value parsers

enum PaxValue {
    static func decimal(_ value: [UInt8]) -> UInt64? {
        guard !value.isEmpty, value.count <= 20 else { return nil }
        var result: UInt64 = 0
        for b in value {
            guard b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = result.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            result = s
        }
        return result
    }

    /// "[-]SECONDS[.FRACTION]" → (floor seconds, nanoseconds ≥ 0). Digits past nanoseconds are dropped.
    static func time(_ value: [UInt8]) -> (Int64, UInt32)? {
        var bytes = value[...]
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { bytes = bytes.dropFirst() }
        let dot = bytes.firstIndex(of: UInt8(ascii: "."))
        let whole = dot.map { bytes[bytes.startIndex..<$0] } ?? bytes
        guard let secs = decimal(Array(whole)), secs <= UInt64(Int64.max) else { return nil }
        var nanos: UInt32 = 0
        if let dot {
            let frac = bytes[(dot + 1)...]
            guard !frac.isEmpty, frac.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { return nil }
            var scale: UInt32 = 100_000_000
            for b in frac.prefix(9) {
                nanos += UInt32(b - UInt8(ascii: "0")) * scale
                scale /= 10
            }
        }
        if !negative { return (Int64(secs), nanos) }
        // -S.F is -(S+1) + (1 - 0.F).
        if nanos == 0 { return (-Int64(secs), 0) }
        guard secs < UInt64(Int64.max) else { return nil }
        return (-Int64(secs) - 1, 1_000_000_000 - nanos)
    }

    static func formatTime(seconds: Int64, nanoseconds: UInt32) -> String {
        if nanoseconds == 0 { return String(seconds) }
        var whole = seconds
        var frac = nanoseconds
        var sign = ""
        if seconds < 0 {
            // Inverse of `time`: floor seconds + positive fraction → "-S.F".
            sign = "-"
            whole = -(seconds + 1)
            frac = 1_000_000_000 - nanoseconds
        }
        var digits = String(frac)
        digits = String(repeating: "0", count: 9 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(sign)\(whole).\(digits)"
    }
}
