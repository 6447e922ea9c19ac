// libarchive's own xattr records: LIBARCHIVE.xattr.<percent-encoded name>=<base64 value>.

enum LibarchiveXattr {
    /// RFC 3986 percent-decoding; a malformed escape makes the name invalid.
    static func percentDecode(_ s: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        while i < s.count {
            if s[i] == UInt8(ascii: "%") {
                guard i + 2 < s.count, let hi = hexValue(s[i + 1]), let lo = hexValue(s[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return out
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Standard-alphabet base64; libarchive omits the '=' padding, so it is optional here.
    static func base64Decode(_ s: [UInt8]) -> [UInt8]? {
        var body = s[...]
        while body.last == UInt8(ascii: "=") { body = body.dropLast() }
        guard s.count - body.count <= 2 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(body.count * 3 / 4)
        var acc: UInt32 = 0
        var bits = 0
        for c in body {
            let v: UInt8
            switch c {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): v = c - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): v = c - UInt8(ascii: "a") + 26
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0") + 52
            case UInt8(ascii: "+"): v = 62
            case UInt8(ascii: "/"): v = 63
            default: return nil
            }
            acc = (acc << 6) | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
                acc &= (1 << UInt32(bits)) - 1
            }
        }
        // A single leftover sextet cannot encode a byte.
        if bits >= 6 { return nil }
        return out
    }
}
