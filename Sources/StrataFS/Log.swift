#if canImport(Glibc)
import Glibc
#endif

/// The daemon's log: one line per event, to stderr (the foreground default), a file
/// (`strata mount --log FILE`) or syslog (the background default, which journald collects).
/// Configured once, before the daemon starts any thread; then only read.
public enum Log {
    public enum Level: Int, Comparable, Sendable, CaseIterable {
        case error = 0, warn, info, debug
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public init?(name: String) {
            guard let level = Level.allCases.first(where: { "\($0)" == name }) else { return nil }
            self = level
        }
        var syslogPriority: Int32 {
            switch self {
            case .error: return LOG_ERR
            case .warn: return LOG_WARNING
            case .info: return LOG_INFO
            case .debug: return LOG_DEBUG
            }
        }
    }

    public enum Sink: Sendable {
        case descriptor(Int32)   // stderr (2) or an open log file, written with one write per line
        case syslog
    }

    nonisolated(unsafe) private static var level: Level = .info
    nonisolated(unsafe) private static var sink: Sink = .descriptor(2)
    /// Until `configure` (a command, not the daemon): plain `strata: message` lines on stderr.
    nonisolated(unsafe) private static var configured = false
    /// openlog keeps the pointer: it must live as long as the process.
    nonisolated(unsafe) private static var ident: UnsafeMutablePointer<CChar>?

    /// Sets where lines go and which are kept. Call before starting threads.
    public static func configure(level: Level, sink: Sink) {
        self.level = level
        self.sink = sink
        configured = true
        if case .syslog = sink, ident == nil {
            ident = strdup("strata")
            openlog(ident, LOG_PID, LOG_DAEMON)
        }
    }

    public static func error(_ message: String) { write(.error, message) }
    public static func warn(_ message: String) { write(.warn, message) }
    public static func info(_ message: String) { write(.info, message) }
    public static func debug(_ message: String) { write(.debug, message) }

    public static func isEnabled(_ level: Level) -> Bool { level <= self.level }

    static func write(_ level: Level, _ message: String) {
        guard level <= self.level else { return }
        let oneLine = message.contains("\n") ? message.split(separator: "\n").joined(separator: " ") : message
        switch sink {
        case .descriptor(let fd) where !configured:
            let line = Array("strata: \(oneLine)\n".utf8)
            _ = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        case .descriptor(let fd):
            // A timestamp and the level, since a file has no journal to add them.
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            var parts = tm()
            var seconds = now.tv_sec
            gmtime_r(&seconds, &parts)
            let stamp = "\(Int(parts.tm_year) + 1900)" + "-" + two(parts.tm_mon + 1) + "-" + two(parts.tm_mday)
                + "T" + two(parts.tm_hour) + ":" + two(parts.tm_min) + ":" + two(parts.tm_sec) + "Z"
            let line = Array("\(stamp) strata[\(getpid())] \(level): \(oneLine)\n".utf8)
            _ = line.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        case .syslog:
            oneLine.withCString { text in
                withVaList([text]) { vsyslog(level.syslogPriority, "%s", $0) }
            }
        }
    }

    private static func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
}
