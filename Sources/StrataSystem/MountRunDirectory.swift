#if canImport(Glibc)
import Glibc
#endif

/// Where a mount's sockets live (its status socket; a supervisor's): one directory per
/// mountpoint, named for it, so any process that knows the mountpoint finds them.
///
///   root:      /run/strata/mounts/<key>/
///   non-root:  $XDG_RUNTIME_DIR/strata/mounts/<key>/   (else /tmp/strata-<uid>/mounts/<key>/)
///
/// `<key>` is the first 16 hex digits of the sha256 of the absolute mountpoint. This module
/// has no sha256, so callers pass the hash in (StrataHash's `SHA256Hasher.hex`).
public struct MountRunDirectory: Sendable {
    public let path: String

    /// `mountpointSHA256Hex`: sha256 (hex) of the absolute mountpoint's bytes.
    public init(mountpointSHA256Hex: String, base: String = MountRunDirectory.base) {
        path = base + "/" + String(mountpointSHA256Hex.prefix(16))
    }

    /// The directory of every mount's run directory, for this user.
    public static var base: String {
        let xdg = getenv("XDG_RUNTIME_DIR").map { String(cString: $0) }
        return base(euid: geteuid(), runtimeDirectory: xdg)
    }

    /// The base for user `euid` with `$XDG_RUNTIME_DIR` = `runtimeDirectory` (nil or empty: unset).
    public static func base(euid: uid_t, runtimeDirectory: String?) -> String {
        if euid == 0 { return "/run/strata/mounts" }
        if let runtimeDirectory, !runtimeDirectory.isEmpty { return runtimeDirectory + "/strata/mounts" }
        return "/tmp/strata-\(euid)/mounts"
    }

    /// The status socket (`strata status`).
    public var statusSocket: String { path + "/status.sock" }

    /// Creates the directory (owner-only: its sockets answer anyone who can reach them).
    public func create() throws {
        try FileIO.makeDirectories(path, mode: 0o700)
    }

    /// Removes a socket in it, then the directory if it is empty.
    public func remove(socket: String) {
        unlink(socket)
        rmdir(path)
    }
}
