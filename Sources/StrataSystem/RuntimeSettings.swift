#if canImport(Glibc)
import Glibc
#endif

/// Every environment variable that steers strata's internals, read once per process: tuning
/// and diagnostics, and the test hooks that let a test order or interrupt a daemon. Nothing
/// else in the code reads the environment for these. The tests set them by name on the
/// processes they start.
public struct RuntimeSettings: Sendable {
    /// `STRATA_READAHEAD_SPANS=N`: how many spans past the current one a sequential reader of a
    /// compressed layer gets decoded ahead (default 1; 0 turns read-ahead off).
    public var readAheadSpans = 1
    /// `STRATA_GZIP_INFLATE=zlib`: inflate gzip layers with zlib instead of isa-l (the default,
    /// any other value): for comparing the two engines.
    public var gzipInflateWithIsal = true
    /// `STRATA_FUSE_SPIN_US=N`: how long a FUSE server thread that just answered a request
    /// polls for the next before it blocks (default 400 µs; 0: it blocks at once). See
    /// StrataFuse's `RequestSpin`.
    public var fuseSpinMicroseconds = 400
    /// `STRATA_FUSE_STATS=FILE`: count FUSE requests and their handler time, and write the
    /// table to FILE when the session ends (off by default).
    public var fuseStatsPath: String?
    /// Tests: `STRATA_TEST_COPYUP_DELAY_MS=N` sleeps N ms after each chunk a copy-up streams,
    /// so a test can watch other requests proceed while one is in progress (default 0).
    public var copyUpDelayMilliseconds: UInt32 = 0
    /// Tests: `STRATA_TEST_COPYUP_GATE=PATH` holds a copy-up that has more than one chunk to
    /// stream, after its first, until PATH exists: a test orders other requests before the
    /// copy-up's end instead of racing a delay.
    public var copyUpGate: String?
    /// Tests: `STRATA_TEST_INDEX_GATE=PATH` holds a built index before it is written to the
    /// cache (see `TestGate`), so a test can act while a mount is still indexing.
    public var indexGate: String?
    /// Tests: `STRATA_COMMIT_CRASH_AFTER=layer|blob|config|manifest` kills the process with
    /// SIGKILL right after that step of a commit (StrataCommit's `CrashPoint`).
    public var commitCrashAfter: String?
    /// Tests: `STRATA_SNAPSHOT_CRASH_AFTER=layer|metadata` kills the process with SIGKILL right
    /// after that step of a snapshot commit (StrataSnapshot's `MetadataCrashPoint`).
    public var snapshotCrashAfter: String?

    /// This process's settings, from its environment at first use.
    public static let current = RuntimeSettings(environment: { getenv($0).map { String(cString: $0) } })

    /// The defaults, then whatever `environment` (a variable's value, nil when unset) sets.
    /// An empty value counts as unset; a number that does not parse leaves the default.
    public init(environment: (String) -> String? = { _ in nil }) {
        func value(_ name: String) -> String? {
            guard let v = environment(name), !v.isEmpty else { return nil }
            return v
        }
        if let n = value("STRATA_READAHEAD_SPANS").flatMap({ Int($0) }) { readAheadSpans = n }
        if let v = value("STRATA_GZIP_INFLATE") { gzipInflateWithIsal = v != "zlib" }
        if let n = value("STRATA_FUSE_SPIN_US").flatMap({ Int($0) }), n >= 0 { fuseSpinMicroseconds = n }
        fuseStatsPath = value("STRATA_FUSE_STATS")
        if let ms = value("STRATA_TEST_COPYUP_DELAY_MS").flatMap({ UInt32($0) }) { copyUpDelayMilliseconds = ms }
        copyUpGate = value("STRATA_TEST_COPYUP_GATE")
        indexGate = value("STRATA_TEST_INDEX_GATE")
        commitCrashAfter = value("STRATA_COMMIT_CRASH_AFTER")
        snapshotCrashAfter = value("STRATA_SNAPSHOT_CRASH_AFTER")
    }
}
