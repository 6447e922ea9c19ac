import StrataRemote

/// Where a mount's supervisor keeps its restart socket: the mount's run directory
/// (`MountRunDirectory`, beside the status socket), named once there.
enum SupervisorRunDirectory {
    static func path(for mountpoint: String) -> String {
        StatusServer.runDirectory(mountpoint: mountpoint).path
    }
}
