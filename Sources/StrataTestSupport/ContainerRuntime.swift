#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import Testing

/// runc or crun, run on a bundle without a terminal. Every test that runs a container
/// deletes it (`delete`, also on failure) by the ID it chose.
public enum ContainerRuntime: String, CaseIterable, Sendable, CustomStringConvertible {
    case runc
    case crun

    public var description: String { rawValue }
    public var path: String { Mounts.tool(rawValue) }
    public var isAvailable: Bool { access(path, X_OK) == 0 && getuid() == 0 }

    /// Skips the running test case, recorded, when this runtime cannot run here. Tests take
    /// every runtime as an argument and call this first: a case never silently vanishes.
    public func requireAvailable(sourceLocation: SourceLocation = #_sourceLocation) throws {
        try Requirement.require(isAvailable, "needs \(rawValue) (scripts/deps installs it), as root", sourceLocation: sourceLocation)
    }

    /// `RUNTIME run --bundle BUNDLE ID`: the container's stdout and exit status.
    public func run(bundle: String, id: String, timeout: Double = 60) throws -> CommandResult {
        try invoke(["run", "--bundle", bundle, id], timeout: timeout)
    }

    /// `RUNTIME delete --force ID`; quiet when the container is already gone.
    public func delete(_ id: String) {
        _ = try? invoke(["delete", "--force", id], timeout: 30)
    }

    /// A unique container ID for a test.
    public static func containerID(_ name: String) -> String {
        "strata-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// crun 1.8 refuses a hybrid cgroup layout whose cgroup2 hierarchy has a controller
    /// attached (hugetlb on some CI hosts): "cgroups in hybrid mode not supported". There it
    /// runs in a private mount namespace without /sys/fs/cgroup/unified, which it then treats
    /// as plain cgroup v1. Nothing changes outside that namespace.
    private func invoke(_ args: [String], timeout: Double) throws -> CommandResult {
        if self == .crun && ContainerRuntime.hybridWithV2Controllers {
            let script = "umount -l /sys/fs/cgroup/unified && exec \"$0\" \"$@\""
            return try Command.run(Mounts.tool("unshare"), ["--mount", "--propagation", "private", "/bin/sh", "-c", script, path] + args,
                                   timeout: timeout)
        }
        return try Command.run(path, args, timeout: timeout)
    }

    static var hybridWithV2Controllers: Bool {
        guard let bytes = try? FileIO.readAll("/sys/fs/cgroup/unified/cgroup.controllers") else { return false }
        return bytes.contains { $0 > 0x20 }
    }
}
