import StrataOCI
#if canImport(Glibc)
import Glibc
#endif

/// Where a mount's supervisor keeps its restart socket: `/run/strata/mounts/<first 16 hex
/// digits of sha256(absolute mountpoint)>/` as root, `$XDG_RUNTIME_DIR/strata/mounts/…`
/// otherwise (`/tmp/strata-<uid>/mounts/…` without it). One function, so that every command
/// (and the status socket beside it) finds the same directory.
enum SupervisorRunDirectory {
    static func path(for mountpoint: String) -> String {
        let name = String(Digest.sha256(of: Array(mountpoint.utf8)).hex.prefix(16))
        return base + "/strata/mounts/" + name
    }

    private static var base: String {
        if geteuid() == 0 { return "/run" }
        if let runtime = getenv("XDG_RUNTIME_DIR").map({ String(cString: $0) }), runtime.hasPrefix("/") { return runtime }
        return "/tmp/strata-\(geteuid())"
    }
}
