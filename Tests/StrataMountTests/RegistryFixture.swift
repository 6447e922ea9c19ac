#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
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

/// The image the registry tests push: a small base layer, and a layer of incompressible files
/// large enough for several spans (so a read fetches only part of the blob).
enum RegistryImage {
    static let big1 = Items.pseudoRandom(count: 6 << 20, seed: 11)
    static let big2 = Items.pseudoRandom(count: 6 << 20, seed: 12)

    /// LAYOUT:v1, built in code.
    @discardableResult
    static func make(layout: String) throws -> ImageBuilder {
        let b = try ImageBuilder(layout: layout)
        try b.addLayer(entries: [
            Items.dir("etc"), Items.file("etc/os-release", "ID=strata-test\n"), Items.dir("usr"), Items.dir("usr/bin"),
            Items.file("usr/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755), Items.symlink("bin", to: "usr/bin"),
            Items.file("etc/gone", "removed above\n"), Items.hardlink("etc/os-release.link", to: "etc/os-release"),
        ])
        try b.addLayer(entries: [
            Items.dir("data"), Items.file(Array("data/big1".utf8), big1), Items.file("data/small", "small file\n"),
            Items.file(Array("data/big2".utf8), big2), Items.whiteout("etc/gone"),
        ])
        try b.write(tag: "v1")
        return b
    }

    /// A cache holding only what a first mount left of `source` that is not blob data: the
    /// indexes, verified diff_ids and merged trees (as if another machine indexed the image).
    static func indexOnlyCache(from source: String, to target: String) throws {
        try FileIO.makeDirectories(target)
        for dir in ["index", "diffid", "tree"] where FileIO.exists("\(source)/\(dir)") {
            try Command.check("/bin/cp", ["-a", "\(source)/\(dir)", "\(target)/\(dir)"])
        }
    }
}

/// `strata status --json MOUNTPOINT`, decoded.
struct StatusReport {
    let json: [String: Any]
    var layers: [[String: Any]] { json["layers"] as? [[String: Any]] ?? [] }

    static func read(_ mountpoint: String) throws -> StatusReport {
        let r = try StrataBinary.run(["status", "--json", mountpoint])
        guard r.succeeded else { throw HarnessError("strata status \(mountpoint) failed (\(r.status)): \(r.stderr)") }
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout))
        guard let json = object as? [String: Any] else { throw HarnessError("status is not an object: \(r.stdoutString)") }
        return StatusReport(json: json)
    }

    func layer(_ digest: Digest) -> [String: Any]? { layers.first { $0["digest"] as? String == digest.description } }
    func number(_ digest: Digest, _ key: String) -> UInt64 { (layer(digest)?[key] as? NSNumber)?.uint64Value ?? 0 }
    func text(_ digest: Digest, _ key: String) -> String? { layer(digest)?[key] as? String }
}
