import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Test hook: `STRATA_COMMIT_CRASH_AFTER=layer|blob|config|manifest` kills the process with
/// SIGKILL right after that step (`layer`: the layer is complete in its temporary file, not yet
/// named by digest), so tests can check that an interrupted commit leaves the layout valid.
public enum CrashPoint: String, Sendable, CaseIterable {
    case layer, blob, config, manifest

    static func reached(_ point: CrashPoint) {
        guard RuntimeSettings.current.commitCrashAfter == point.rawValue else { return }
        kill(getpid(), SIGKILL)
    }
}
