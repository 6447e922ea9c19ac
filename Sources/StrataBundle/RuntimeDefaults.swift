/// What a bundle gets that the image config does not say: the defaults of `runc spec`
/// (runc 1.1.5, the runtime the tests use; crun's own default is the same in substance).
/// Taken over field for field so a strata bundle confines a container exactly as a bundle
/// made by the runtime itself; `RuncDefaultsTests` compares them with `runc spec` output.
public enum RuntimeDefaults {
    /// runtime-spec version written into config.json; runc 1.1 and crun 1.8 both take it.
    public static let ociVersion = "1.0.2"

    /// Docker and containerd put this PATH into a container whose image Env has none, so
    /// images built for them (`FROM scratch` + a static binary) find their tools. conversion.md
    /// allows adding variables the image does not name; one it names is never changed.
    public static let path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    public static let capabilities: [String] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

    /// Ambient too, as runc writes it: a non-root user keeps these across exec.
    public static var processCapabilities: RuntimeSpec.Capabilities {
        .init(bounding: capabilities, effective: capabilities, permitted: capabilities, ambient: capabilities)
    }

    public static let rlimits: [RuntimeSpec.Rlimit] = [
        .init(type: "RLIMIT_NOFILE", hard: 1024, soft: 1024),
    ]

    /// false, unlike `runc spec`: containerd, podman and Docker leave it off, so setuid programs
    /// (`su`, `sudo`, `ping`) and file capabilities in an image work as they do there.
    public static let noNewPrivileges = false

    public static let mounts: [RuntimeSpec.Mount] = [
        .init(destination: "/proc", type: "proc", source: "proc"),
        .init(destination: "/dev", type: "tmpfs", source: "tmpfs",
              options: ["nosuid", "strictatime", "mode=755", "size=65536k"]),
        .init(destination: "/dev/pts", type: "devpts", source: "devpts",
              options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        .init(destination: "/dev/shm", type: "tmpfs", source: "shm",
              options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]),
        .init(destination: "/dev/mqueue", type: "mqueue", source: "mqueue",
              options: ["nosuid", "noexec", "nodev"]),
        .init(destination: "/sys", type: "sysfs", source: "sysfs",
              options: ["nosuid", "noexec", "nodev", "ro"]),
        .init(destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup",
              options: ["nosuid", "noexec", "nodev", "relatime", "ro"]),
    ]

    public static let namespaces: [RuntimeSpec.Namespace] = ["pid", "network", "ipc", "uts", "mount"].map {
        .init(type: $0)
    }

    /// Deny every device node access; runc then allows its own default set (null, zero,
    /// full, tty, urandom, random, ptmx...) that it creates in /dev.
    public static let resources = RuntimeSpec.Resources(devices: [.init(allow: false, access: "rwm")])

    public static let maskedPaths = [
        "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    ]

    public static let readonlyPaths = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

    public static var linux: RuntimeSpec.Linux {
        .init(resources: resources, namespaces: namespaces, maskedPaths: maskedPaths, readonlyPaths: readonlyPaths)
    }
}
