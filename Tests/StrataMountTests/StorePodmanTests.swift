#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSystem
import StrataTestSupport
import Testing

/// `strata store ROOT`, the daemon: started and unmounted like a mount.
final class StoreGuard {
    let root: String
    private(set) var isMounted = false

    init(root: String, args: [String]) throws {
        self.root = root
        try FileIO.makeDirectories(root)
        let r = try StrataBinary.subcommand("store", args + [root])
        guard r.succeeded else { throw HarnessError("strata store \(args) \(root) failed (\(r.status)): \(r.stderr)") }
        isMounted = Mounts.waitUntil(seconds: 10) { Mounts.isMounted(root) }
        guard isMounted else { throw HarnessError("strata store \(root) succeeded but nothing is mounted there") }
    }

    func unmount() throws {
        guard isMounted else { return }
        let r = try StrataBinary.subcommand("unmount", [root])
        guard r.succeeded else { throw HarnessError("strata unmount \(root): \(r.stderr)") }
        isMounted = false
    }

    deinit { if isMounted { try? Mounts.forceUnmount(root) } }
}

/// podman refuses a runroot longer than 50 characters (its conmon socket paths), and a test's
/// temporary directory under scripts/test's run root is longer: a short symlink in /tmp to
/// it, removed with this object.
final class ShortPath {
    let path: String
    init(to target: String) throws {
        try FileIO.makeDirectories(target)
        path = "/tmp/strata-p\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        guard symlink(target, path) == 0 else { throw SystemError(code: errno, operation: "symlink", path: path) }
    }
    deinit { unlink(path) }
}

/// Issue 12, point 3: podman 4.3.1 (containers/storage 1.43) pulls and runs an image whose
/// layers come from `strata store`, its Additional Layer Store, without downloading them.
///
/// The image runs `python3 -c …`: built in code from this machine's own Debian packages
/// (libc, python3.11-minimal and what it loads), plus a 24 MiB file the command never reads, so
/// that "not downloaded" is clear in the bytes counted at the registry proxy; a third layer
/// whites out a file and makes a directory opaque, which podman's kernel overlay must honour.
@Suite(.mountTimeLimit, .serialized,
       .enabled(if: canRunPodman && TestRegistry.isAvailable, "needs root, podman, runc, docker-registry, skopeo and a built strata"))
struct StorePodmanTests {
    static let basePackages = ["base-files", "libc6", "zlib1g", "libexpat1"]
    static let pythonPackages = ["python3.11-minimal", "libpython3.11-minimal", "python3-minimal"]
    static let command = ["python3", "-c", "import os; print(1); print(os.path.exists('/etc/removed')); print(sorted(os.listdir('/opt/d')))"]
    static let expected = "1\nFalse\n['b']\n"

    /// A layer from a directory tree, as GNU tar writes it (owners, modes, xattrs kept).
    static func tarLayer(_ builder: ImageBuilder, directory: String, temp: TempDirectory, name: String) throws {
        let file = temp.child(name + ".tar")
        try Command.check("/bin/tar", ["--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", directory, "-cf", file, "."], timeout: 300)
        try builder.addLayer(tar: try FileIO.readAll(file))
    }

    static func makeImage(layout: String, temp: TempDirectory) throws -> ImageBuilder {
        try HostRootfs.requireInstalled(basePackages + pythonPackages)
        let b = try ImageBuilder(layout: layout)
        let base = try temp.makeDirectory("base")
        try HostRootfs.copy(into: base, packages: basePackages)
        try FileIO.makeDirectories(base + "/opt/d")
        try FileIO.writeAtomically(base + "/etc/removed", Array("gone above\n".utf8))
        try FileIO.writeAtomically(base + "/opt/d/a", Array("a\n".utf8))
        try tarLayer(b, directory: base, temp: temp, name: "base")
        let python = try temp.makeDirectory("python")
        try HostRootfs.copy(into: python, packages: pythonPackages)
        try FileIO.makeDirectories(python + "/usr/share/strata")
        try FileIO.writeAtomically(python + "/usr/share/strata/unused.bin", Items.pseudoRandom(count: 24 << 20, seed: 7))
        try tarLayer(b, directory: python, temp: temp, name: "python")
        try b.addLayer(entries: [Items.dir("etc"), Items.whiteout("etc/removed"), Items.dir("opt"), Items.dir("opt/d"),
                                 Items.opaque("opt/d"), Items.file("opt/d/b", "b\n")])
        try b.write(tag: "v1", config: .init(cmd: ["/usr/bin/python3"]))
        return b
    }

    /// podman with its own storage under `temp` and `store` as the overlay driver's
    /// additional layer store; runc and cgroupfs, as PodmanRootfsTests (see there).
    struct Podman {
        let temp: TempDirectory
        let runroot: ShortPath
        let store: String
        init(temp: TempDirectory, store: String) throws {
            self.temp = temp
            self.store = store
            runroot = try ShortPath(to: temp.child("podman-run"))
        }
    }

    static func podman(_ podman: Podman, _ args: [String]) throws -> CommandResult {
        let temp = podman.temp, store = podman.store, runroot = podman.runroot
        return try Command.run(Mounts.tool("podman"), [
            "--root", temp.child("podman-root"), "--runroot", runroot.path, "--tmpdir", temp.child("podman-tmp"),
            "--storage-driver", "overlay", "--storage-opt", "overlay.additionallayerstore=\(store):ref",
            "--runtime", ContainerRuntime.runc.path, "--cgroup-manager", "cgroupfs", "--events-backend", "none",
        ] + args, timeout: 300)
    }

    static func run(_ p: Podman, image: String) throws -> CommandResult {
        try podman(p, ["run", "--rm", "--tls-verify=false", "--network", "none",
                                        "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", image] + command)
    }

    /// The use and release counts the store logged, per layer digest: the last one logged.
    static func lastCounts(_ log: String) -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in log.split(separator: "\n") where line.contains("use: ") || line.contains("release: ") {
            guard let layer = line.range(of: " layer sha256:") else { continue }
            let rest = line[layer.upperBound...]
            let hex = String(rest.prefix(64))
            if let colon = rest.range(of: ": "), let n = Int(rest[colon.upperBound...].split(separator: " ").first ?? "") {
                counts["sha256:" + hex] = n
            }
        }
        return counts
    }

    @Test("podman runs an image through strata store without downloading its layers; rmi releases them; a restarted store serves them again")
    func podmanRunsThroughTheStore() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let registry = try TestRegistry()
        let image = try Self.makeImage(layout: temp.child("layout"), temp: temp)
        try registry.push(layout: image.reference("v1"), reference: "py:v1")
        // Published from another cache: the store's fresh cache finds the indexes in the registry.
        let indexed = try StrataBinary.run(["index", "--push", "--tls-verify=false", "--cache", temp.child("publisher"), registry.reference("py:v1")], timeout: 300)
        try #require(indexed.succeeded, "strata index --push: \(indexed.stderr)")
        let proxy = try RegistryProxy(registry)
        let reference = "\(proxy.host)/py:v1"
        let blobBytes = image.layers.reduce(0) { $0 + Int($1.descriptor.size) }
        let root = temp.child("store"), log = temp.child("store.log")
        let storeArgs = ["--tls-verify=false", "--cache", temp.child("cache"), "--log", log, "--background-fetch=off"]

        var store = try StoreGuard(root: root, args: storeArgs)
        let podman = try Podman(temp: temp, store: root)
        defer { _ = try? Self.podman(podman, ["rmi", "--all", "--force"]); try? store.unmount() }
        let before = try proxy.statistics()
        let first = try Self.run(podman, image: reference)
        #expect(first.succeeded, "podman run: status \(first.status): \(first.stderr)")
        #expect(first.stdoutString == Self.expected)
        // Layers came from the store: podman's layers are symlinks into it, and only what the
        // command read (and the indexes) crossed the proxy, far less than the blobs.
        let fetched = try proxy.statistics().blobBytes - before.blobBytes
        #expect(fetched < blobBytes / 2, "fetched \(fetched) of \(blobBytes) blob bytes")
        let links = try Command.run("/usr/bin/find", [temp.child("podman-root/overlay"), "-maxdepth", "2", "-name", "additionallayer"])
        #expect(links.stdoutString.split(separator: "\n").count == image.layers.count, "\(links.stdoutString)")
        var logText = String(decoding: (try? FileIO.readAll(log)) ?? [], as: UTF8.self)
        for layer in image.layers {
            #expect(logText.contains("use: docker://\(reference) layer \(layer.descriptor.digest)"), "\(layer.descriptor.digest) never acquired:\n\(logText)")
        }

        // A restarted store answers what it answered before, from its records: podman's
        // committed layers (symlinks into ROOT) work again, and the store asks the registry
        // for no manifest.
        try store.unmount()
        store = try StoreGuard(root: root, args: storeArgs)
        let beforeSecond = try proxy.statistics()
        let second = try Self.run(podman, image: reference)
        #expect(second.succeeded, "podman run after the store restarted: status \(second.status): \(second.stderr)")
        #expect(second.stdoutString == Self.expected)
        #expect(try proxy.statistics().manifestRequests == beforeSecond.manifestRequests)

        // podman rmi releases every layer (rmdir of its directory, answered ENOENT).
        let rmi = try Self.podman(podman, ["rmi", reference])
        #expect(rmi.succeeded, "podman rmi: \(rmi.stderr)")
        #expect(!rmi.stderr.contains("GC doesn't seem to be supported"), "\(rmi.stderr)")
        logText = String(decoding: (try? FileIO.readAll(log)) ?? [], as: UTF8.self)
        let counts = Self.lastCounts(logText)
        for layer in image.layers {
            #expect(logText.contains("release: docker://\(reference) layer \(layer.descriptor.digest)"), "\(layer.descriptor.digest) never released:\n\(logText)")
            #expect(counts[layer.descriptor.digest.description] == 0)
        }
        #expect(!first.stderr.contains("GC doesn't seem to be supported"), "\(first.stderr)")
        try store.unmount()
    }

    @Test("an unknown reference or layer is ENOENT, a registry that is down is EIO, not a hang")
    func hostileLookups() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let registry = try TestRegistry()
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.dir("etc"), Items.file("etc/hello", "hello\n"),
                                       Items.file(Array("big".utf8), Items.pseudoRandom(count: 6 << 20, seed: 3))])
        try builder.write(tag: "v1")
        try registry.push(layout: builder.reference("v1"), reference: "app:v1")
        // Published, so the store reads the layer lazily (else it streams it whole at once).
        let indexed = try StrataBinary.run(["index", "--push", "--tls-verify=false", "--cache", temp.child("publisher"), registry.reference("app:v1")])
        try #require(indexed.succeeded, "strata index --push: \(indexed.stderr)")
        let proxy = try RegistryProxy(registry)
        let root = temp.child("store")
        let store = try StoreGuard(root: root, args: ["--tls-verify=false", "--cache", temp.child("cache"), "--log", temp.child("store.log"),
                                                      "--background-fetch=off"])
        defer { try? store.unmount() }
        func exists(_ path: String) -> Int32 {
            var st = stat()
            return stat(path, &st) == 0 ? 0 : errno
        }
        let layer = builder.layers[0].descriptor.digest
        let ref = root + "/" + Data("\(proxy.host)/app:v1".utf8).base64EncodedString()
        #expect(exists(root + "/not-base64!") == ENOENT)
        #expect(exists(root + "/" + Data("\(proxy.host)/nothing:v1".utf8).base64EncodedString() + "/\(layer)") == ENOENT)
        #expect(exists("\(ref)/\(Digest.sha256(of: [1]))") == ENOENT)
        #expect(exists("\(ref)/\(layer)/diff") == 0)
        // The use notification: open(O_CREAT) answered ENOENT, as c/storage expects.
        #expect(open("\(ref)/\(layer)/use", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) == -1 && errno == ENOENT)
        #expect(rmdir("\(ref)/\(layer)") == -1 && errno == ENOENT)
        #expect(try FileIO.readAll("\(ref)/\(layer)/diff/etc/hello") == Array("hello\n".utf8))
        // The registry goes down: a read of bytes not yet fetched fails with EIO.
        try proxy.inject(.down, match: "/")
        #expect(readError("\(ref)/\(layer)/diff/big", at: 5 << 20) == EIO)
        // A reference never resolved cannot be now: EIO (not "absent").
        #expect(exists(root + "/" + Data("\(proxy.host)/other:v1".utf8).base64EncodedString() + "/\(layer)") == EIO)
        try proxy.reset()
        try store.unmount()
    }
}
