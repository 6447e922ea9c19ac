#if canImport(Glibc)
import Glibc
#endif

/// The daemon's log: one line per event on stderr (which the daemon points at its log file).
public enum Log {
    public static func error(_ message: String) {
        fputs("strata: \(message)\n", stderr)
    }
}
