/// What `strata bundle` options change in config.json, as `podman run` takes them: each
/// replaces (or for env, overrides by name) what the image's config says.
public struct BundleOptions: Sendable, Equatable {
    /// `K=V` entries; one naming a variable the image sets replaces it, others are appended.
    public var env: [String] = []
    /// Replaces WorkingDir (absolute).
    public var workdir: String?
    /// Replaces User (`user`, `uid`, `user:group`, `uid:gid`), resolved through the image's files.
    public var user: String?
    /// Replaces Hostname.
    public var hostname: String?
    /// `process.terminal`.
    public var tty = false
    /// Extra bind mounts, after the runtime's defaults.
    public var mounts: [RuntimeSpec.Mount] = []
    /// Replaces Entrypoint and Cmd together; nil: the image's.
    public var command: [String]?

    public init(env: [String] = [], workdir: String? = nil, user: String? = nil, hostname: String? = nil, tty: Bool = false,
                mounts: [RuntimeSpec.Mount] = [], command: [String]? = nil) {
        self.env = env; self.workdir = workdir; self.user = user; self.hostname = hostname; self.tty = tty
        self.mounts = mounts; self.command = command
    }

    /// umoci's (and runc spec's) program when neither the image nor the user names one.
    public static let defaultCommand = ["sh"]

    /// `SRC:DST[:ro|rw]` → a recursive bind mount; SRC must already be absolute.
    public static func bindMount(_ text: String) throws(BundleError) -> RuntimeSpec.Mount {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 2 || parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            throw BundleError("--mount \"\(text)\": expected SRC:DST or SRC:DST:ro")
        }
        guard parts[0].hasPrefix("/"), parts[1].hasPrefix("/") else {
            throw BundleError("--mount \"\(text)\": SRC and DST must be absolute paths")
        }
        var mode = "rw"
        if parts.count == 3 {
            guard parts[2] == "ro" || parts[2] == "rw" else { throw BundleError("--mount \"\(text)\": option \"\(parts[2])\" is not ro or rw") }
            mode = parts[2]
        }
        return RuntimeSpec.Mount(destination: parts[1], type: "bind", source: parts[0], options: ["rbind", mode])
    }
}
