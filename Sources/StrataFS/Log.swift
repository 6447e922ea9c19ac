#if canImport(Glibc)
import Glibc
#endif

/// The daemon's log: one line per event on stderr (which the daemon points at its log file).
public enum Log {
    public static func error(_ message: String) {
        let line = Array("strata: \(message)\n".utf8)
        _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }
}
