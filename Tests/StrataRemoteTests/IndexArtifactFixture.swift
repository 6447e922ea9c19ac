#if canImport(Glibc)
import Glibc
#endif
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem
import StrataTestSupport

/// A Debian `docker-registry` on 127.0.0.1 for one test (storage in the test's directory, a
/// free port, no auth), stopped by its PID; and the image the artifact tests publish.
final class ArtifactRegistry {
    static let executable = "/usr/bin/docker-registry"
    static var isAvailable: Bool { access(executable, X_OK) == 0 && Skopeo.isAvailable }

    let directory: String
    private(set) var port: Int32 = 0
    private var process: ChildProcess?

    init(directory: String) throws {
        self.directory = directory
        try FileIO.makeDirectories(directory + "/storage")
        for _ in 0..<8 {
            port = Int32.random(in: 20000..<60000)
            if try start() { return }
        }
        let log = (try? FileIO.readAll(directory + "/registry.log")).map { String(decoding: $0, as: UTF8.self) } ?? ""
        throw HarnessError("docker-registry did not start: \(log)")
    }

    deinit {
        process?.kill(SIGTERM)
        _ = try? process?.wait()
    }

    var host: String { "127.0.0.1:\(port)" }

    private func start() throws -> Bool {
        let config = """
        version: 0.1
        log:
          level: warn
          accesslog:
            disabled: true
        storage:
          filesystem:
            rootdirectory: \(directory)/storage
        http:
          addr: 127.0.0.1:\(port)
          secret: strata-test

        """
        let path = directory + "/config.yml"
        try FileIO.writeAtomically(path, Array(config.utf8))
        let log = SpawnOptions.Stream.file(directory + "/registry.log", flags: O_WRONLY | O_CREAT | O_APPEND)
        let child = try ChildProcess.spawn(Self.executable, ["serve", path],
                                           options: SpawnOptions(stdin: .null, stdout: log, stderr: log,
                                                                 defaultSignals: [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD]))
        for _ in 0..<100 {
            if try child.poll() != nil { return false }
            let ping = try Command.run("/usr/bin/python3", ["-c", "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)",
                                                             "http://\(host)/v2/"], timeout: 10)
            if ping.succeeded {
                process = child
                return true
            }
            usleep(50_000)
        }
        child.kill()
        _ = try? child.wait()
        return false
    }

    /// Pushes LAYOUT:TAG as REPO:TAG (skopeo, plain HTTP; blobs and manifest bytes unchanged).
    func push(layout: String, tag: String, repository: String) throws {
        try Command.check(Skopeo.path, ["--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                                        "oci:\(layout):\(tag)", "docker://\(host)/\(repository):\(tag)"], timeout: 300)
    }

    func client(_ repository: String) throws -> RegistryClient {
        var options = RegistryOptions()
        options.tlsVerify = false
        options.timeout = 20
        return try RegistryClient(host: host, repository: repository, options: options)
    }

    func resolve(_ repository: String, tag: String) throws -> (RegistryClient, ResolvedImage) {
        let client = try client(repository)
        guard let reference = try RegistryReference.parse("docker://\(host)/\(repository):\(tag)") else {
            throw HarnessError("not a registry reference")
        }
        return (client, try RemoteImage.resolve(reference, client: client, platform: nil))
    }
}
