#if canImport(Glibc)
import Glibc
#endif

/// skopeo, to make image archives (oci-archive, docker-archive) from layouts as users do.
public enum Skopeo {
    public static var path: String { Mounts.tool("skopeo") }
    public static var isAvailable: Bool { access(path, X_OK) == 0 }

    /// `skopeo copy SOURCE DESTINATION` (transport:path forms), checked.
    public static func copy(_ source: String, _ destination: String) throws {
        try Command.check(path, ["--insecure-policy", "copy", "--quiet", source, destination], timeout: 300)
    }
}
