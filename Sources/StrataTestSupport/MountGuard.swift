#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A strata mount that cannot outlive its test: `unmount()` or, failing that, deinit
/// takes it down, so a failed expectation never leaves a FUSE mount behind.
/// Call `unmount()` at the end of a test (or `withExtendedLifetime`): ARC may otherwise
/// end the guard at its last use, while the mount is still being read.
public final class MountGuard {
    public let image: String
    public let mountpoint: String
    /// What `strata mount` printed.
    public let mountResult: CommandResult
    public private(set) var isMounted: Bool

    /// Runs `strata mount EXTRA... IMAGE MOUNTPOINT` (creating the mount point if needed)
    /// and waits until the kernel lists the mount. `environment` is added to the daemon's.
    public init(image: String, mountpoint: String, extraArgs: [String] = [], environment: [String: String] = [:],
                timeout: Double = 120) throws {
        self.image = image
        self.mountpoint = mountpoint
        try FileIO.makeDirectories(mountpoint)
        let result = try StrataBinary.run(["mount"] + extraArgs + [image, mountpoint], environment: environment, timeout: timeout)
        mountResult = result
        // strata mount returns once mounted, but allow the kernel a moment to list it.
        let listed = result.succeeded && Mounts.waitUntil(seconds: 10) { Mounts.isMounted(mountpoint) }
        isMounted = listed
        if !listed {
            // A half-done mount must not stay behind the thrown error.
            try? Mounts.forceUnmount(mountpoint)
            if !result.succeeded {
                throw CommandError(command: ["strata", "mount"] + extraArgs + [image, mountpoint], result: result)
            }
            throw HarnessError("strata mount \(image) \(mountpoint) succeeded but nothing is mounted there\n\(result.stderr)")
        }
    }

    public func unmount() throws {
        guard isMounted else { return }
        try Mounts.forceUnmount(mountpoint)
        isMounted = false
    }

    deinit {
        if isMounted { try? Mounts.forceUnmount(mountpoint) }
    }

    public static func isMounted(_ path: String) -> Bool { Mounts.isMounted(path) }
}
