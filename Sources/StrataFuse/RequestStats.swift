#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Per-opcode request counts and handler time, for finding where a workload's time goes
/// (which requests the kernel sends, how many, how long each takes to answer; of the write
/// operations only FLUSH is counted). Off unless `STRATA_FUSE_STATS=FILE` is set in the daemon's
/// environment; the table is written to FILE when the session ends. Off, it costs one check
/// per request.
enum RequestStats {
    enum Op: Int, CaseIterable {
        case lookup, forget, getattr, readlink, opendir, readdir, readdirplus, releasedir
        case open, read, release, statfs, getxattr, listxattr, access
        /// A writable mount's FLUSH: none since every open says none is needed (FOPEN_NOFLUSH),
        /// unless the kernel predates that flag (5.16).
        case flush
    }

    static let path = RuntimeSettings.current.fuseStatsPath
    static let enabled = path != nil

    private struct Table {
        var counts = [UInt64](repeating: 0, count: Op.allCases.count)
        var nanoseconds = [UInt64](repeating: 0, count: Op.allCases.count)
    }
    private static let table = Locked(Table())

    /// Runs one request's handler, counting it and its time when on. The time includes the
    /// reply's write; when the caller shares the CPU it may also include the caller's run
    /// until its next request (the wake-up lets it preempt the daemon), so compare counts
    /// first and times only between runs of the same kind.
    @inline(__always)
    static func timed(_ op: Op, _ handler: () -> Void) {
        guard enabled else { return handler() }
        let start = now()
        handler()
        let elapsed = now() &- start
        table.withLock { table in
            table.counts[op.rawValue] &+= 1
            table.nanoseconds[op.rawValue] &+= elapsed
        }
    }

    /// Writes the table (one line per opcode seen: name, count, mean µs in the handler) and
    /// clears it, so that every session's file holds that session only.
    static func flush() {
        guard let path else { return }
        let snapshot = table.withLock { table in
            defer { table = Table() }
            return table
        }
        var text = "op count handler_us_mean handler_ms_total\n"
        for op in Op.allCases where snapshot.counts[op.rawValue] > 0 {
            let count = snapshot.counts[op.rawValue]
            let total = Double(snapshot.nanoseconds[op.rawValue])
            text += "\(op) \(count) \(Self.format(total / Double(count) / 1000)) \(Self.format(total / 1e6))\n"
        }
        guard let fd = try? FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644) else { return }
        try? fd.writeAll(Array(text.utf8))
        fd.close()
    }

    private static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    private static func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
