import StrataFS
import StrataFuse
import StrataRemote
import StrataStore
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

enum StoreCommand {
    static let help = """
    usage: strata store [--cache DIR] [--foreground] [--log FILE] [--log-level error|warn|info|debug]
                        [--tls-verify=false] [--authfile FILE] [--creds USER[:PASS]]
                        [--background-fetch=on|off] [--background-rate BYTES] ROOT

    Serves podman's Additional Layer Store at ROOT, a FUSE mount that podman asks for every
    layer it pulls from a registry and mounts the layer from, instead of downloading and
    extracting it. `strata unmount ROOT` ends it. For podman 4.3.1 (containers/storage 1.43,
    the overlay driver): `podman --storage-opt overlay.additionallayerstore=ROOT:ref ...`, or
    in storage.conf, [storage.options] additionallayerstores = ["ROOT:ref"].

    ROOT/<base64 of REF>/<layer digest>/ holds, for a layer of the image REF names
    (HOST[:PORT]/REPO[:TAG][@sha256:HEX], as podman gives it): `diff`, the layer's own tree
    (not the union; whiteouts as overlayfs's 0/0 character devices, opaque directories marked
    with trusted.overlay.opaque=y and user.overlay.opaque=y), read lazily; `info`, JSON with
    compressed-diff-digest, compressed-size, diff-digest (the config's diff_id), diff-size and
    compression (2 gzip, 4 zstd); `blob`, the raw blob (fetched as read, verified). The
    manifest and config are fetched when podman first looks a layer up; a layer's index comes
    from the cache, else from an index published in the registry (`strata index --push`), else
    the image's layers stream once. What was resolved is recorded under CACHE/store, so after a
    restart of the store every reference and layer it answered before answers again (podman's
    layers keep symlinks into ROOT), without the registry. podman's use and release
    notifications (creating `use`, removing a layer directory) are counted and logged; both
    answer ENOENT, as containers/storage expects. An unknown reference or layer is ENOENT; a
    registry that cannot be reached is EIO.

    The daemon goes to the background; the command exits 0 once ROOT answers. As root the
    store is mounted allow_other and suid (the layers are container roots).

      --cache DIR        index and blob cache (default /var/cache/strata as root, else $XDG_CACHE_HOME/strata)
      --foreground       stay in the foreground; SIGINT or SIGTERM unmounts and exits
      --log FILE         append the daemon's log to FILE (default: syslog in the background,
                         stderr with --foreground)
      --log-level L      error, warn, info (default: also every use and release) or debug
    \(RegistryFlags.help)
      --background-fetch=on|off
                         once an image's layers are indexed, fetch the rest of their blobs in the
                         background and verify them whole (default on; off: only what is read is
                         fetched, each span verified)
      --background-rate BYTES
                         cap of the background fetch, bytes per second (K, M, G suffixes; 0: no
                         cap). Default 20M
    """

    static let spec = Arguments.Spec(valued: Set(["--cache", "--ready-fd", "--log", "--log-level", "--background-fetch",
                                                  "--background-rate"]).union(RegistryFlags.valued.subtracting(["--pull"])),
                                     flags: ["--foreground", "--syslog"])

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(RegistryFlags.normalize(args), spec: spec)
        let registry = try RegistryFlags(a)
        let background = try BackgroundOptions(a)
        guard a.positionals.count == 1 else { throw CLIError("store needs ROOT (see strata store --help)") }
        let root = FileIO.absolute(a.positionals[0])
        let levelName = a["--log-level"] ?? "info"
        guard let level = Log.Level(name: levelName) else {
            throw CLIError("--log-level \(levelName): not error, warn, info or debug", usage: true)
        }
        if let occupant = FuseMount.occupant(root) {
            if occupant.stale {
                throw CLIError("\(root) holds a stale strata mount (its daemon is gone); `strata unmount \(root)` clears it")
            }
            throw CLIError("\(root) is already mounted (\(occupant.fsType))")
        }
        guard FileIO.isDirectory(root) else { throw CLIError("\(root): not a directory") }
        let cacheDirectory = a["--cache"].map(FileIO.absolute)

        if !a.has("--foreground") {
            var childArgs = ["store", "--foreground"]
            if let cacheDirectory { childArgs += ["--cache", cacheDirectory] }
            if let log = a["--log"] { childArgs += ["--log", FileIO.absolute(log)] } else { childArgs.append("--syslog") }
            childArgs += ["--log-level", levelName] + registry.arguments + background.arguments + [root]
            let startupErrors = try StartupErrors()
            defer { startupErrors.close() }
            let child = try Daemon.spawnDetached(arguments: childArgs,
                                                 extraEnvironment: registry.creds.map { [RegistryFlags.credsEnvironment: $0] } ?? [:],
                                                 argument0: "strata", standardError: startupErrors.descriptor)
            switch Daemon.waitReady(child.readiness) {
            case .success: return
            case .failure(let message): throw CLIError(startupErrors.explain(message.description, mountpoint: root))
            }
        }

        try DaemonLog.configure(file: a["--log"].map(FileIO.absolute), syslog: a.has("--syslog"), level: level)
        FuseServer.blockShutdownSignals()
        let ready = a["--ready-fd"].flatMap { Int32($0) }.map { FileDescriptor(rawValue: $0) }
        do {
            let cache = try ImageOpening.cache(cacheDirectory)
            let source = RegistryLayerSource(cache: cache, options: registry.options, backgroundFetch: background.enabled,
                                             backgroundRate: background.bytesPerSecond, log: RemoteLogging.daemon)
            let fileSystem = StoreFileSystem(source: source)
            var options = FuseMountOptions()
            // podman (root) and the kernel's overlay, on behalf of containers, read the layers.
            options.allowOther = geteuid() == 0
            options.suid = geteuid() == 0
            // c/storage's use and release notifications (create, rmdir) must reach the store.
            options.readOnly = false
            // A reference or layer unknown now may be known later (pushed, registry back up).
            options.negativeTimeout = 0
            options.fsName = "strata-store"
            let server = try FuseServer(fileSystem: fileSystem, mountpoint: root, options: options)
            try server.run(onReady: {
                Log.info("serving the additional layer store at \(root) (cache \(cache.directory))")
                if let ready {
                    if a.has("--syslog") || a["--log"] != nil { DaemonLog.detachStartupStderr(logFile: a["--log"].map(FileIO.absolute)) }
                    Daemon.reportReady(fd: ready)
                }
            })
            source.stop()
            Log.info("unmounted \(root)")
        } catch {
            if let ready { Daemon.reportError(fd: ready, message: "\(error)") }
            throw error
        }
    }
}
