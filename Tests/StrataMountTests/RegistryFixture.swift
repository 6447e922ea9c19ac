#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataTestSupport

/// A Debian `docker-registry` on 127.0.0.1 for one test: its config and storage in the test's
/// temporary directory, on a free port, stopped by its PID. `stop()` and `start()` again (same
/// port and storage) take the registry down and bring it back; `htpasswd` turns on basic auth.
final class RegistryFixture {
    static let executable = "/usr/bin/docker-registry"
    static var isAvailable: Bool { access(executable, X_OK) == 0 && Skopeo.isAvailable }

    let directory: String
    let storage: String
    private(set) var port: Int32 = 0
    private var process: ChildProcess?
    private let htpasswd: String?

    /// `htpasswd`: a file of bcrypt users (basic auth on), else no auth.
    init(directory: String, htpasswd: String? = nil) throws {
        self.directory = directory
        storage = directory + "/storage"
        self.htpasswd = htpasswd
        try FileIO.makeDirectories(storage)
        var lastError = ""
        for _ in 0..<8 {
            port = Int32.random(in: 20000..<60000)
            if try startProcess() { return }
            lastError = (try? String(decoding: FileIO.readAll(directory + "/registry.log"), as: UTF8.self)) ?? ""
        }
        throw HarnessError("docker-registry did not start: \(lastError)")
    }

    deinit { stop() }

    /// "127.0.0.1:PORT".
    var host: String { "127.0.0.1:\(port)" }
    func reference(_ repository: String, tag: String = "latest") -> String { "docker://\(host)/\(repository):\(tag)" }

    /// Starts it (again, after `stop`); whether it answers.
    @discardableResult
    func startProcess() throws -> Bool {
        var config = """
        version: 0.1
        log:
          level: warn
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: \(storage)
        http:
          addr: 127.0.0.1:\(port)
          secret: strata-test
        """
        if let htpasswd {
            config += """

            auth:
              htpasswd:
                realm: strata-test
                path: \(htpasswd)
            """
        }
        let configPath = directory + "/config.yml"
        try FileIO.writeAtomically(configPath, Array((config + "\n").utf8))
        let child = try ChildProcess.spawn(Self.executable, ["serve", configPath],
                                           options: SpawnOptions(stdin: .null, stdout: .file(directory + "/registry.log", flags: O_WRONLY | O_CREAT | O_APPEND),
                                                                 stderr: .file(directory + "/registry.log", flags: O_WRONLY | O_CREAT | O_APPEND),
                                                                 defaultSignals: [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD]))
        for _ in 0..<100 {
            if try child.poll() != nil { return false }
            let ping = try Command.run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(host)/v2/"], timeout: 10)
            if ping.stdoutString == "200" || ping.stdoutString == "401" {
                process = child
                return true
            }
            usleep(50_000)
        }
        child.kill()
        _ = try? child.wait()
        return false
    }

    /// The registry goes away (connections refused) until `start()`.
    func stop() {
        guard let process else { return }
        process.kill(SIGTERM)
        _ = try? process.wait()
        self.process = nil
    }

    func start() throws {
        guard try startProcess() else { throw HarnessError("docker-registry did not restart on port \(port)") }
    }

    /// Pushes LAYOUT:TAG as REPO:TAG (skopeo, plain HTTP).
    func push(layout: String, tag: String, repository: String, creds: String? = nil) throws {
        var args = ["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false"]
        if let creds { args += ["--dest-creds", creds] }
        try Command.check(Skopeo.path, args + ["oci:\(layout):\(tag)", reference(repository, tag: tag)], timeout: 300)
    }

    /// The file the registry serves a blob from.
    func blobFile(hex: String) -> String {
        "\(storage)/docker/registry/v2/blobs/sha256/\(hex.prefix(2))/\(hex)/data"
    }
}
