#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataTestSupport
import Testing

/// `podman run --rootfs` on a strata mount (issue 15, point 7). podman creates /etc/mtab (and
/// /etc/hosts, /run/.containerenv...) in the root it is given, so a read-only mount alone fails
/// ("creating /etc/mtab symlink: read-only file system"). The documented ways: `--rootfs MNT:O`
/// (podman's own overlay over the read-only mount) or a writable `strata mount --upper` mount.
let canRunPodman = getuid() == 0 && access(Mounts.tool("podman"), X_OK) == 0 && ContainerRuntime.runc.isAvailable
    && BusyboxImage.isAvailable && StrataBinary.isBuilt

@Suite(.enabled(if: canRunPodman, "needs root, podman, runc, umoci, busybox-static and a built strata"),
       .serialized, .mountTimeLimit)
struct PodmanRootfsTests {
    /// `podman run --rm --network none --rootfs ROOTFS ARGS...`. The runtime is runc: podman's
    /// default, crun, refuses this kind of host's hybrid cgroup layout (see ContainerRuntime).
    /// podman raises RLIMIT_NOFILE and RLIMIT_NPROC to its defaults (1048576...), which a root
    /// without CAP_SYS_RESOURCE (a CI container) may not: they are set low instead, which
    /// never needs a privilege.
    static func podman(rootfs: String, _ args: [String]) throws -> CommandResult {
        return try Command.run(Mounts.tool("podman"), [
            "--runtime", ContainerRuntime.runc.path, "run", "--rm", "--network", "none",
            "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--rootfs", rootfs,
        ] + args, timeout: 120)
    }

    @Test func readOnlyMountWithPodmansOverlay() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"))
        let mount = try MountGuard(image: image, mountpoint: temp.child("mnt"), extraArgs: ["--cache", temp.child("cache")])
        defer { withExtendedLifetime(mount) {} }
        let result = try Self.podman(rootfs: temp.child("mnt") + ":O", ["/bin/busybox", "sh", "-c", "echo hi; cat /etc/hello"])
        #expect(result.succeeded, "status \(result.status): \(result.stderr)")
        #expect(result.stdoutString == "hi\nhello from the image\n")
        // podman's files went to its overlay, not into the (read-only) image.
        #expect(!FileIO.exists(temp.child("mnt/etc/mtab")) && !FileIO.exists(temp.child("mnt/run/.containerenv")))
        try mount.unmount()
    }

    @Test func writableMountDirectly() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"))
        let upper = temp.child("upper")
        let mount = try MountGuard(image: image, mountpoint: temp.child("mnt"),
                                   extraArgs: ["--cache", temp.child("cache"), "--upper", upper])
        defer { withExtendedLifetime(mount) {} }
        let result = try Self.podman(rootfs: temp.child("mnt"), ["/bin/busybox", "sh", "-c", "echo hi > /tmp/out; cat /tmp/out /etc/hello"])
        #expect(result.succeeded, "status \(result.status): \(result.stderr)")
        #expect(result.stdoutString == "hi\nhello from the image\n")
        try mount.unmount()
        // Everything podman and the container wrote is in the upper.
        #expect(FileIO.exists(upper + "/tmp/out"))
        #expect(FileIO.exists(upper + "/etc/mtab") || isSymlink(upper + "/etc/mtab"))
    }

    func isSymlink(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFLNK
    }
}
