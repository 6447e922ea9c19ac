#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A minbase Debian bookworm tree made by debootstrap, kept under /var/cache/strata-test/
/// between runs: making it takes minutes and network, using it takes seconds.
public enum DebianRootfs {
    /// Bump to rebuild the cached tree (e.g. after changing how it is made).
    public static let version = "debian-bookworm-minbase-v1"
    public static let cacheRoot = "/var/cache/strata-test"

    public static var isAvailable: Bool { access(Mounts.tool("debootstrap"), X_OK) == 0 || FileIO.exists(path) }

    /// The cached tree; absent until `ensure()` made it.
    public static var path: String { "\(cacheRoot)/\(version)/rootfs" }

    /// Returns the cached tree, running debootstrap first when it is missing. Concurrent
    /// callers (several test runs on one machine) wait for one another on a lock file.
    public static func ensure() throws -> String {
        try FileIO.makeDirectories("\(cacheRoot)/\(version)")
        let lock = open("\(cacheRoot)/\(version).lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lock >= 0 else { throw SystemError(code: errno, operation: "open", path: "\(cacheRoot)/\(version).lock") }
        defer { close(lock) }
        while flock(lock, LOCK_EX) != 0 && errno == EINTR {}
        if FileIO.exists(path + "/usr/bin/dpkg") { return path }
        // Built beside its final place and renamed: an interrupted run leaves no half tree there.
        let partial = "\(cacheRoot)/\(version)/rootfs.partial"
        try TempDirectory.remove(partial)
        try Command.check(Mounts.tool("debootstrap"), ["--variant=minbase", "bookworm", partial, mirror()], timeout: 1800)
        try TempDirectory.remove(path)
        guard rename(partial, path) == 0 else { throw SystemError(code: errno, operation: "rename", path: partial) }
        return path
    }

    /// The Debian mirror apt is configured with (deb822 or one-line sources), else deb.debian.org.
    public static func mirror() -> String {
        var candidates: [String] = []
        for file in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"] {
            guard let bytes = try? FileIO.readAll(file) else { continue }
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                let words = line.split(separator: " ").map(String.init)
                if words.first == "URIs:" { candidates += words.dropFirst() }
                if words.first == "deb", let uri = words.dropFirst().first(where: { $0.hasPrefix("http") }) {
                    candidates.append(uri)
                }
            }
        }
        // The security archive has no bookworm suite of its own.
        return candidates.first { !$0.contains("security") && $0.contains("debian") } ?? "http://deb.debian.org/debian"
    }
}
