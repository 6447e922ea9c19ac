#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem
import Testing

/// A private Debian `docker-registry` (2.8) on 127.0.0.1 for one test: a free port it binds itself, its
/// storage under a TempDirectory, and no auth, htpasswd basic auth, or token auth behind a JWT
/// token server started with it. Stopped (by PID) by `stop()` or when the object goes away; the
/// helper that runs it also ends it if the test process dies.
///
///     let registry = try TestRegistry()                       // or TestRegistry(auth: .basic(...))
///     let ref = try registry.push(layout: builder.reference("v1"), reference: "app:v1")
///     // ref == "docker://127.0.0.1:PORT/app:v1"
public final class TestRegistry {
    public enum Auth: Sendable, Equatable {
        case none
        /// htpasswd (bcrypt) basic auth with one user.
        case basic(user: String, password: String)
        /// Bearer tokens from a test token server that knows one user. `anonymous`: it also
        /// gives tokens without credentials. `expires`: token lifetime in seconds.
        case token(user: String, password: String, anonymous: Bool = false, expires: Int = 300)
    }

    /// What the tests need: docker-registry, python3, skopeo, htpasswd and openssl (scripts/deps).
    public static var isAvailable: Bool { missingTools.isEmpty }
    public static var missingTools: [String] {
        ["docker-registry", "python3", "skopeo", "htpasswd", "openssl"].filter { access(Mounts.tool($0), X_OK) != 0 }
    }
    public static let requirement: Comment = "needs docker-registry, python3, skopeo, htpasswd and openssl (scripts/deps)"

    public let auth: Auth
    /// "127.0.0.1:PORT"
    public private(set) var host = ""
    public private(set) var port = 0
    /// The registry's filesystem storage root (blobs under docker/registry/v2/blobs/sha256/).
    public let storage: String
    /// The temp directory holding config, storage, logs and the helper script.
    public let directory: TempDirectory
    public let helper: String
    /// The token server's statistics file (token auth only).
    public let tokenStatisticsPath: String?
    private var processes: [ChildProcess] = []

    public init(auth: Auth = .none) throws {
        self.auth = auth
        directory = try TempDirectory(prefix: "strata-test-registry-")
        helper = try RegistryHelperScript.install(in: directory.path)
        storage = try directory.makeDirectory("storage")
        var authSection = ""
        var tokenStats: String?
        switch auth {
        case .none:
            break
        case .basic(let user, let password):
            let file = directory.child("htpasswd")
            try Command.check(Mounts.tool("htpasswd"), ["-B", "-b", "-c", file, user, password])
            authSection = """
            auth:
              htpasswd:
                realm: strata-test
                path: \(file)

            """
        case .token(let user, let password, let anonymous, let expires):
            let key = directory.child("token.key"), cert = directory.child("token.crt")
            try Command.check(Mounts.tool("openssl"), ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                                                       "-out", cert, "-days", "2", "-subj", "/CN=strata-test-token"])
            let stats = directory.child("token-stats.json")
            var args = [helper, "token", "--parent", "\(getpid())", "--port", "0", "--key", key, "--cert", cert,
                        "--issuer", "strata-test-issuer", "--user", user, "--password", password,
                        "--expires", "\(expires)", "--stats", stats]
            if anonymous { args.append("--anonymous") }
            let log = directory.child("token.log")
            let server = try TestRegistry.start(RegistryHelperScript.python, args, log: log)
            processes.append(server)
            let tokenPort = try TestRegistry.listeningPort(log: log, host: "127.0.0.1", what: "token server", process: server)
            try TestRegistry.wait(helper: helper, url: "http://127.0.0.1:\(tokenPort)/token", what: "token server", log: log,
                                  process: server)
            tokenStats = stats
            authSection = """
            auth:
              token:
                realm: http://127.0.0.1:\(tokenPort)/token
                service: strata-test-registry
                issuer: strata-test-issuer
                rootcertbundle: \(cert)

            """
        }
        tokenStatisticsPath = tokenStats
        let config = """
        version: 0.1
        log:
          level: info
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: \(storage)
          delete:
            enabled: true
        http:
          addr: 127.0.0.1:0
          secret: strata-test-secret
        \(authSection)
        """
        let configPath = directory.child("config.yml")
        try FileIO.writeAtomically(configPath, Array(config.utf8), durable: false)
        let log = directory.child("registry.log")
        do {
            let server = try TestRegistry.start(RegistryHelperScript.python,
                                                [helper, "supervise", "\(getpid())", "--", Mounts.tool("docker-registry"), "serve", configPath],
                                                log: log)
            processes.append(server)
            // Port 0 in the config: the registry binds a free port and logs which (so no other
            // test's server can take it between a pick and the bind).
            port = try TestRegistry.listeningPort(log: log, host: "127.0.0.1", what: "docker-registry", process: server)
            host = "127.0.0.1:\(port)"
            try TestRegistry.wait(helper: helper, url: "http://\(host)/v2/", what: "docker-registry", log: log, process: server)
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    /// Stops the registry (and token server) by PID: SIGTERM, then SIGKILL after 5 s.
    public func stop() {
        for process in processes.reversed() { TestRegistry.end(process) }
        processes = []
    }

    /// "docker://HOST/REPO:TAG" for "REPO:TAG" (or "REPO@sha256:…").
    public func reference(_ repository: String) -> String { "docker://\(host)/\(repository)" }

    /// `skopeo copy --all --preserve-digests --dest-tls-verify=false oci:LAYOUT:TAG docker://HOST/REFERENCE`
    /// (with the user's credentials when the registry needs them). `layout` is "DIR:TAG" as
    /// `ImageBuilder.reference(_:)` gives; `reference` is "REPO:TAG". Returns the docker:// reference.
    @discardableResult
    public func push(layout: String, reference: String) throws -> String {
        var args = ["--insecure-policy", "copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false"]
        if let credentials { args += ["--dest-creds", "\(credentials.user):\(credentials.password)"] }
        let destination = self.reference(reference)
        args += ["oci:\(layout)", destination]
        try Command.check(Skopeo.path, args, timeout: 300)
        return destination
    }

    /// The user and password the registry knows, if it has auth.
    public var credentials: (user: String, password: String)? {
        switch auth {
        case .none: return nil
        case .basic(let user, let password), .token(let user, let password, _, _): return (user, password)
        }
    }

    /// The file in the registry's storage that holds a blob (to tamper with it).
    public func blobFile(_ digest: Digest) -> String {
        "\(storage)/docker/registry/v2/blobs/\(digest.algorithm)/\(digest.hex.prefix(2))/\(digest.hex)/data"
    }

    /// How many tokens the token server issued and refused so far (token auth only).
    public func tokenStatistics() throws -> TokenServerStatistics {
        guard let tokenStatisticsPath else { throw HarnessError("registry \(host) has no token server") }
        return try JSONCoding.decode(TokenServerStatistics.self, from: FileIO.readAll(tokenStatisticsPath), what: tokenStatisticsPath)
    }

    // MARK: processes

    /// The port a server started on port 0 bound, from the "listening on HOST:PORT" line it
    /// logs (docker-registry at level info, the helper's servers always). Up to 30 s; the
    /// server's exit ends the wait at once.
    static func listeningPort(log: String, host: String, what: String, process: ChildProcess) throws -> Int {
        let marker = "listening on \(host):"
        for _ in 0..<600 {
            let text = (try? FileIO.readAll(log)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            if let range = text.firstRange(of: marker) {
                let digits = text[range.upperBound...].prefix { $0.isNumber }
                if let port = Int(digits), port > 0, text[range.upperBound...].dropFirst(digits.count).first.map({ !$0.isNumber }) ?? false {
                    return port
                }
            }
            if (try? process.poll()) != nil {
                throw HarnessError("\(what) exited before it listened: log: \(text)")
            }
            usleep(50_000)
        }
        let text = (try? FileIO.readAll(log)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        throw HarnessError("\(what) did not say which port it listens on within 30 s: log: \(text)")
    }

    /// A port nothing listens on now (for a test that needs one no server answers on; a
    /// server of a test binds port 0 instead, see `listeningPort`).
    public static func freePort(helper: String) throws -> Int {
        let result = try Command.check(RegistryHelperScript.python, [helper, "freeport"])
        guard let port = Int(result.stdoutString.split(separator: "\n").first ?? "") else {
            throw HarnessError("freeport printed \(result.stdoutString)")
        }
        return port
    }

    /// Starts a server with stdout and stderr in `log`.
    static func start(_ executable: String, _ arguments: [String], log: String) throws -> ChildProcess {
        let options = SpawnOptions(stdin: .null, stdout: .file(log, flags: O_WRONLY | O_CREAT | O_APPEND),
                                   stderr: .file(log, flags: O_WRONLY | O_CREAT | O_APPEND),
                                   defaultSignals: [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD], searchPath: true)
        return try ChildProcess.spawn(executable, arguments, options: options)
    }

    /// Waits until `url` answers (any status), up to 30 s; the error quotes the server's log.
    /// `process`: the server, whose exit ends the wait at once.
    static func wait(helper: String, url: String, what: String, log: String, process: ChildProcess? = nil) throws {
        let result = try Command.run(RegistryHelperScript.python, [helper, "wait", url, "30"] + (process.map { ["\($0.pid)"] } ?? []),
                                     timeout: 40)
        if !result.succeeded {
            let text = (try? FileIO.readAll(log)).map { String(decoding: $0, as: UTF8.self) } ?? ""
            throw HarnessError("\(what) did not start (\(url)): \(result.stderr) log: \(text)")
        }
    }

    static func end(_ process: ChildProcess) {
        process.kill(SIGTERM)
        for _ in 0..<100 {
            if (try? process.poll()) != nil { return }
            usleep(50_000)
        }
        process.kill(SIGKILL)
        _ = try? process.wait()
    }
}

/// The token server's counters.
public struct TokenServerStatistics: Codable, Sendable {
    /// Tokens issued.
    public var tokens: Int
    /// Requests refused (wrong or missing credentials).
    public var refused: Int
    /// The scope parameters of the token requests, in order.
    public var scopes: [String]
}
