import StrataOCI

/// Image config → runtime config, by the image-spec's conversion.md; everything the image
/// does not say comes from `RuntimeDefaults` (runc's own default spec).
///
/// Strict by design: a value that is malformed or unknown (an Env entry without '=', a
/// relative WorkingDir, an unknown StopSignal, a non-Linux image...) is an error naming the
/// config field, never quietly replaced by a default, because a container started with a
/// guessed command, user or directory is worse than no container.
public enum SpecConverter {
    /// - Parameters:
    ///   - passwd, group: the image's /etc/passwd and /etc/group, nil when the image has none.
    ///   - readOnly: `root.readonly`; true when the bundle has no writable upper.
    ///   - options: what `strata bundle`'s options replace (user, workdir, env, command...).
    ///
    /// As umoci does, the process gets `TERM=xterm` and `HOME` (the user's passwd home, else
    /// "/") unless its environment names them, and `["sh"]` when nothing names a program.
    public static func convert(config image: ImageConfig, passwd: [UInt8]?, group: [UInt8]?,
                               readOnly: Bool, options: BundleOptions = .init()) throws(BundleError) -> RuntimeSpec {
        guard image.os == "linux" else {
            throw BundleError("os \"\(image.os)\": only linux images can run from a bundle")
        }
        var c = image.config ?? ContainerConfig()
        if let user = options.user { c.user = user }
        if let workdir = options.workdir {
            guard workdir.hasPrefix("/") else { throw BundleError("--workdir \"\(workdir)\": not an absolute path") }
            c.workingDir = workdir
        }
        if let hostname = options.hostname { c.hostname = hostname }
        if let command = options.command {
            guard let first = command.first, !first.isEmpty else { throw BundleError("the command after -- is empty") }
            c.entrypoint = nil
            c.cmd = command
        } else if (c.entrypoint ?? []).isEmpty && (c.cmd ?? []).isEmpty {
            c.cmd = BundleOptions.defaultCommand
        }
        let user = try UserResolver.resolve(c.user, passwd: passwd, group: group)
        var environment = try env(c.env)
        try override(&environment, with: options.env)
        func has(_ name: String) -> Bool { environment.contains { $0.hasPrefix(name + "=") } }
        if !has("TERM") { environment.append("TERM=xterm") }
        if !has("HOME") { environment.append("HOME=" + home(c.user, uid: user.uid, passwd: passwd)) }
        let process = RuntimeSpec.Process(
            terminal: options.tty,
            user: user,
            args: try args(c),
            env: environment,
            cwd: try cwd(c.workingDir),
            capabilities: RuntimeDefaults.processCapabilities,
            rlimits: RuntimeDefaults.rlimits,
            noNewPrivileges: RuntimeDefaults.noNewPrivileges)
        let annotations = try annotations(image)
        return RuntimeSpec(
            ociVersion: RuntimeDefaults.ociVersion,
            process: process,
            root: .init(path: "rootfs", readonly: readOnly),
            hostname: try hostLabel(c.hostname, field: "config.Hostname"),
            domainname: try hostLabel(c.domainname, field: "config.Domainname"),
            mounts: RuntimeDefaults.mounts + options.mounts,
            annotations: annotations.isEmpty ? nil : annotations,
            linux: RuntimeDefaults.linux)
    }

    /// Entrypoint followed by Cmd (conversion.md note 2).
    static func args(_ c: ContainerConfig) throws(BundleError) -> [String] {
        let args = (c.entrypoint ?? []) + (c.cmd ?? [])
        guard let first = args.first else {
            throw BundleError("config.Entrypoint and config.Cmd are both empty: the image names no process to run")
        }
        guard !first.isEmpty else {
            let field = (c.entrypoint ?? []).isEmpty ? "config.Cmd[0]" : "config.Entrypoint[0]"
            throw BundleError("\(field) is an empty string: no program to run")
        }
        return args
    }

    /// Env verbatim, plus the default PATH when the image sets none (conversion.md note 1
    /// allows adding variables the image does not name).
    static func env(_ env: [String]?) throws(BundleError) -> [String] {
        var out: [String] = []
        var hasPath = false
        for (i, entry) in (env ?? []).enumerated() {
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw BundleError("config.Env[\(i)] \"\(entry)\": expected NAME=VALUE")
            }
            if entry.utf8.contains(0) { throw BundleError("config.Env[\(i)]: contains a NUL byte") }
            if entry[..<eq] == "PATH" { hasPath = true }
            out.append(entry)
        }
        if !hasPath { out.insert(RuntimeDefaults.path, at: 0) }
        return out
    }

    /// `--env K=V` entries: one replaces the variable of that name, others are appended.
    static func override(_ environment: inout [String], with entries: [String]) throws(BundleError) {
        for entry in entries {
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw BundleError("--env \"\(entry)\": expected NAME=VALUE")
            }
            let prefix = entry[...eq]
            if let i = environment.firstIndex(where: { $0.hasPrefix(prefix) }) {
                environment[i] = entry
            } else {
                environment.append(entry)
            }
        }
    }

    /// The home directory of the process's user in the image's /etc/passwd (by name when the
    /// user is named, else by uid), "/" when it has none.
    static func home(_ user: String?, uid: UInt32, passwd: [UInt8]?) -> String {
        let db = UserDatabase(passwd: passwd, group: nil)
        let name = user.flatMap { $0.split(separator: ":", omittingEmptySubsequences: false).first.map(String.init) } ?? ""
        let entry = !name.isEmpty && !IDParser.looksNumeric(name) ? db.user(named: name) : db.user(withUID: uid)
        guard let home = entry?.home, !home.isEmpty else { return "/" }
        return home
    }

    /// WorkingDir verbatim; "/" when unset. The runtime needs an absolute path.
    static func cwd(_ dir: String?) throws(BundleError) -> String {
        guard let dir, !dir.isEmpty else { return "/" }
        guard dir.hasPrefix("/") else {
            throw BundleError("config.WorkingDir \"\(dir)\": not an absolute path")
        }
        return dir
    }

    /// Hostname and Domainname: nil when unset; otherwise what sethostname(2) takes.
    static func hostLabel(_ name: String?, field: String) throws(BundleError) -> String? {
        guard let name, !name.isEmpty else { return nil }
        guard name.utf8.count <= 64 else { throw BundleError("\(field) \"\(name)\": longer than 64 bytes") }
        guard !name.contains("/"), !name.utf8.contains(where: { $0 < 0x21 || $0 == 0x7f }) else {
            throw BundleError("\(field) \"\(name)\": contains '/', a space or a control character")
        }
        return name
    }

    /// The implicit `org.opencontainers.image.*` annotations, then Labels over them
    /// (conversion.md "Annotations": a label wins a conflict).
    static func annotations(_ image: ImageConfig) throws(BundleError) -> [String: String] {
        let prefix = "org.opencontainers.image."
        var out: [String: String] = [:]
        out[prefix + "os"] = image.os
        out[prefix + "architecture"] = image.architecture
        if let v = image.variant, !v.isEmpty { out[prefix + "variant"] = v }
        if let v = image.osVersion, !v.isEmpty { out[prefix + "os.version"] = v }
        if let v = image.osFeatures, !v.isEmpty { out[prefix + "os.features"] = v.joined(separator: ",") }
        if let v = image.author, !v.isEmpty { out[prefix + "author"] = v }
        if let v = image.created, !v.isEmpty { out[prefix + "created"] = v }
        let c = image.config
        if let signal = c?.stopSignal, !signal.isEmpty {
            guard Signals.isValid(signal) else {
                throw BundleError("config.StopSignal \"\(signal)\": not a Linux signal name or number")
            }
            out[prefix + "stopSignal"] = signal
        }
        if let ports = c?.exposedPorts, !ports.isEmpty {
            for key in ports.keys.sorted() where !isPort(key) {
                throw BundleError("config.ExposedPorts \"\(key)\": expected PORT, PORT/tcp, PORT/udp or PORT/sctp")
            }
            out[prefix + "exposedPorts"] = ports.keys.sorted().joined(separator: ",")
        }
        if let volumes = c?.volumes {
            // Not mounted: the writable upper already keeps writes out of the image (see
            // BundleCommand's help). Still checked, so a broken config is not run as is.
            for key in volumes.keys.sorted() where !key.hasPrefix("/") {
                throw BundleError("config.Volumes \"\(key)\": not an absolute path")
            }
        }
        for (key, value) in c?.labels ?? [:] {
            guard !key.isEmpty else { throw BundleError("config.Labels: a label has an empty key") }
            out[key] = value
        }
        return out
    }

    static func isPort(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let port = IDParser.parse(String(parts[0])), (1...65535).contains(port) else { return false }
        return parts.count == 1 || ["tcp", "udp", "sctp"].contains(parts[1])
    }
}

/// Signal names and numbers as Docker's StopSignal takes them: "SIGTERM", "TERM", "15",
/// "SIGRTMIN+3", "RTMAX-1"; case-insensitive.
enum Signals {
    static let names: Set<String> = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU",
        "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS", "RTMIN", "RTMAX",
    ]
    /// SIGRTMIN is 34 and SIGRTMAX 64 under glibc, so 30 real-time offsets either way.
    static let realtimeSpan: UInt32 = 30

    static func isValid(_ signal: String) -> Bool {
        if let n = IDParser.parse(signal) { return (1...64).contains(n) }
        var name = signal.uppercased()
        if name.hasPrefix("SIG") { name.removeFirst(3) }
        if names.contains(name) { return true }
        for (base, sign) in [("RTMIN", "+"), ("RTMAX", "-")] where name.hasPrefix(base + sign) {
            let offset = String(name.dropFirst(base.count + 1))
            if let n = IDParser.parse(offset), n <= realtimeSpan { return true }
        }
        return false
    }
}
