#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 times for config and history `created` fields.
public enum Timestamp {
    /// `SOURCE_DATE_EPOCH` when set (reproducible builds' convention), else now.
    public static func commitTime() -> Int64 {
        if let value = getenv("SOURCE_DATE_EPOCH"), let seconds = Int64(String(cString: value)) { return seconds }
        return Int64(time(nil))
    }

    /// "2024-05-01T12:00:00Z".
    public static func rfc3339(_ seconds: Int64) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
