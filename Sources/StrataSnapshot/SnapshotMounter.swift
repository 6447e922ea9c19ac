/// How the store mounts a chain image. The CLI runs its own `strata mount` (which
/// daemonizes and answers once the mount works); the store only decides what to mount where.
public protocol SnapshotMounter {
    /// Mounts `image` (a layout reference) at `mountpoint` using `cache` for layer indexes:
    /// writable through `upper`/`work` when given, read-only otherwise.
    func mount(image: String, at mountpoint: String, upper: String?, work: String?, cache: String) throws
    func unmount(_ mountpoint: String) throws
    func isMounted(_ mountpoint: String) -> Bool
}
