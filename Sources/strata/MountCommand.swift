import StrataFS
import StrataFuse
import StrataIndex
import StrataOCI
import StrataRemote
import StrataSeekable
import StrataSystem
import StrataUpper
#if canImport(Glibc)
import Glibc
#endif

enum MountCommand {
    static let help = """
    usage: strata mount [--cache DIR] [--platform OS/ARCH[/VARIANT]] [--allow-other] [--suid] [--foreground]
                        [--stats FILE] [--log FILE] [--log-level error|warn|info|debug]
                        [--upper DIR [--work DIR]] [--tls-verify=false] [--authfile FILE] [--creds USER[:PASS]] [--pull=always|missing|never]
                        [--background-fetch=on|off] [--background-rate BYTES] [--record-reads FILE]
                        IMAGE MOUNTPOINT
           strata IMAGE MOUNTPOINT -o OPTION[,OPTION...]

    Mounts IMAGE (DIR, DIR:TAG or DIR@sha256:HEX of an OCI image layout; oci-archive:FILE[:TAG] or
    docker-archive:FILE[:REPO:TAG], an image archive read in place; docker://HOST[:PORT]/REPO[:TAG]
    or docker://HOST[:PORT]/REPO@sha256:HEX, an image in a registry, fetched lazily) read-only at
    MOUNTPOINT as the union of its layers, without extracting them. Layers not yet indexed are
    read once (and verified against their digests); later mounts use the cached index and read
    no layer data. A docker:// image's manifest digest is resolved once and kept for the life
    of the mount; each layer's index comes from the cache, else from an index published in the
    registry (`strata index --push`), else the layer streams once, indexed as it downloads.
    Reads then fetch only the spans they need (verified against the index's span digests), and
    the background fetch completes and verifies each blob. `strata status MOUNTPOINT` shows it.
    The daemon goes to the background; the command exits 0 once the mount answers, or prints the
    error and exits non-zero with nothing mounted. The daemon is a small supervisor holding the
    mount and a process serving it; a serving process that dies is replaced without the mount's
    users seeing an error (see `strata restart --help`).

      --cache DIR        index cache (default /var/cache/strata as root, else $XDG_CACHE_HOME/strata)
      --platform P       platform to pick from an image index (default: this host's)
      --allow-other      let other users (a runtime running as another user) see the mount
      --suid             honour setuid and setgid bits (root only). Without it the mount is nosuid,
                         as FUSE mounts are by default; it is always nodev. `strata bundle` and
                         snapshot mounts, which are container roots, use it when run as root.
      --foreground       stay in the foreground; SIGINT or SIGTERM unmounts and exits
      --stats FILE       at unmount, write what serving cost to FILE (JSON: bytes of layer data
                         inflated, bytes of file data served to readers, the image's compressed
                         and uncompressed sizes)
      --record-reads FILE
                         record the first read of each of the image's regular files, in order,
                         and write the list to FILE (atomically) every 5 s while it grows and
                         at unmount (a restarted server starts it anew), in the format of
                         stargz's `ctr-remote image optimize --record-out`: one JSON object a
                         line, {"layerIndex":2,"manifestDigest":"sha256:…","path":"usr/bin/x"}
                         (layerIndex: the manifest's layer the file comes from, 0 = bottom).
                         `strata convert --record-in FILE` puts those files first in each layer.
                         With --upper, files read from the upper directory are not recorded
      --upper DIR        mount writable: every change goes to DIR (created if missing), in kernel
                         overlayfs's upper-directory format; the image stays untouched. A DIR from
                         an earlier mount is reused. One mount at a time per DIR.
      --work DIR         scratch directory for copy-ups, on DIR's file system (default: DIR.work)
      --log FILE         append the daemon's log to FILE (default: syslog, which journald keeps,
                         in the background; stderr with --foreground). Every EIO a reader gets
                         is logged with the layer digest, the entry and the cause.
      --log-level L      error, warn, info (default: also mounts and unmounts) or debug
    \(RegistryFlags.help)
    \(RegistryFlags.pullHelp)
      --background-fetch=on|off
                         after the mount answers (and the files eStargz/zstd:chunked TOCs mark
                         for prefetch are fetched), fetch the rest of each docker:// layer's
                         blob in the background and verify the whole blob (sha256 and diff_id; a
                         mismatch turns the layer's reads into EIO). Default on. Off: only what
                         is read is fetched, and whole blobs are never verified (spans still are).
                         A local eStargz / zstd:chunked layer indexed from its TOC is checked the
                         same way after the mount answers (its stream's diff_id, and every TOC
                         entry as the tar stream holds it; once per cache); off: not checked
      --background-rate BYTES
                         cap of the background fetch, bytes per second (K, M, G suffixes: KiB,
                         MiB, GiB; 0: no cap). Default 20M. Reads always go first

    `mount -t fuse.strata IMAGE MOUNTPOINT -o OPTIONS` and an /etc/fstab line such as
      IMAGE  MOUNTPOINT  fuse.strata  ro,allow_other,cache=/var/cache/strata  0 0
    work through mount.fuse3, which runs `strata IMAGE MOUNTPOINT -o OPTIONS` (strata must be in
    /usr/local/bin, /usr/bin or /bin: mount(8) runs helpers without PATH; scripts/install also
    puts a mount.fuse.strata helper in PREFIX/sbin). Options: ro (the default without upper=),
    rw (needs upper=), allow_other, suid (mount.fuse3 adds it for root unless nosuid is
    given), cache=DIR, upper=DIR, work=DIR, platform=P, log=FILE, log-level=L, stats=FILE.
    Ignored: defaults, auto, noauto, user, users, nouser, _netdev, nofail, comment=, x-*,
    dev, nodev (strata mounts are always nodev), exec, noexec, nosuid, sync, async and the
    atime options. `umount MOUNTPOINT` unmounts; the daemon exits when its mount is gone.

    podman: `podman run --rootfs MOUNTPOINT:O ...` runs a container on a read-only mount (podman
    puts its own overlay on top for the files it creates, such as /etc/mtab); a mount made with
    --upper DIR takes `podman run --rootfs MOUNTPOINT ...` directly, podman's files going to DIR.
    """

    static let spec = Arguments.Spec(valued: Set(["--cache", "--platform", "--ready-fd", "--stats", "--upper", "--work",
                                                  "--log", "--log-level", "--background-fetch", "--background-rate", "--record-reads",
                                                  MountSupervision.serverSocketFlag])
                                        .union(RegistryFlags.valued),
                                     flags: ["--allow-other", "--foreground", "--suid", "--syslog", MountSupervision.takeoverFlag])

    static func run(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(RegistryFlags.normalize(args), spec: spec)
        let registry = try RegistryFlags(a)
        let background = try BackgroundOptions(a)
        guard a.positionals.count == 2 else { throw CLIError("mount needs IMAGE and MOUNTPOINT (see strata mount --help)") }
        let reference = a.positionals[0]
        let mountpoint = FileIO.absolute(a.positionals[1])
        let levelName = a["--log-level"] ?? "info"
        guard let level = Log.Level(name: levelName) else {
            throw CLIError("--log-level \(levelName): not error, warn, info or debug", usage: true)
        }
        let serverSocket = a[MountSupervision.serverSocketFlag].flatMap { Int32($0) }.map(FileDescriptor.init(rawValue:))
        let takingOver = a.has(MountSupervision.takeoverFlag)
        if !takingOver, let occupant = FuseMount.occupant(mountpoint) {
            if occupant.stale {
                throw CLIError("mountpoint \(mountpoint) holds a stale strata mount (its daemon is gone); `strata unmount \(mountpoint)` clears it")
            }
            throw CLIError("mountpoint \(mountpoint) is already mounted (\(occupant.fsType))")
        }
        guard takingOver || FileIO.exists(mountpoint) else { throw CLIError("mountpoint \(mountpoint) does not exist") }
        guard takingOver || FileIO.isDirectory(mountpoint) else { throw CLIError("mountpoint \(mountpoint) is not a directory") }
        guard !a.has("--suid") || geteuid() == 0 else { throw CLIError("--suid needs root (fusermount3 mounts nosuid for other users)") }

        if !a.has("--foreground") {
            // Re-run ourselves detached, in the foreground mode, and wait for its word.
            var childArgs = ["mount", "--foreground"]
            if let c = a["--cache"] { childArgs += ["--cache", FileIO.absolute(c)] }
            if let p = a["--platform"] { childArgs += ["--platform", p] }
            if a.has("--allow-other") { childArgs.append("--allow-other") }
            if a.has("--suid") { childArgs.append("--suid") }
            if let u = a["--upper"] { childArgs += ["--upper", FileIO.absolute(u)] }
            if let w = a["--work"] { childArgs += ["--work", FileIO.absolute(w)] }
            if let s = a["--stats"] { childArgs += ["--stats", FileIO.absolute(s)] }
            if let r = a["--record-reads"] { childArgs += ["--record-reads", FileIO.absolute(r)] }
            if let log = a["--log"] { childArgs += ["--log", FileIO.absolute(log)] } else { childArgs.append("--syslog") }
            childArgs += ["--log-level", levelName]
            childArgs += registry.arguments + background.arguments
            // No "--": the readiness flag comes after these. Both are absolute, so neither starts with "-".
            childArgs += [ImageOpening.absoluteReference(reference), mountpoint]
            // Until it is ready the daemon's stderr goes to a file read here: what fusermount3
            // or libfuse said is the real cause of a failed mount.
            let startupErrors = try StartupErrors()
            defer { startupErrors.close() }
            // argv[0] "strata": `ps` shows `strata mount ... IMAGE MOUNTPOINT`, not /proc/self/exe.
            let child = try Daemon.spawnDetached(arguments: childArgs,
                                                 extraEnvironment: registry.creds.map { [RegistryFlags.credsEnvironment: $0] } ?? [:],
                                                 argument0: "strata",
                                                 standardError: startupErrors.descriptor)
            switch Daemon.waitReady(child.readiness) {
            case .success: return 0
            case .failure(let message):
                // The daemon failed before it was ready; it unmounted what it had mounted.
                throw CLIError(startupErrors.explain(message.description, mountpoint: mountpoint))
            }
        }

        try DaemonLog.configure(file: a["--log"].map(FileIO.absolute), syslog: a.has("--syslog"), level: level)

        // The daemon: signals must be blocked before any thread starts (indexing starts some).
        FuseServer.blockShutdownSignals()
        let ready = a["--ready-fd"].flatMap { Int32($0) }.map { FileDescriptor(rawValue: $0) }
        // The daemon is the mount's supervisor; it starts this command again as the server.
        guard let serverSocket else {
            return MountSupervision.run(args, mountpoint: mountpoint, ready: ready, logFile: a["--log"].map(FileIO.absolute))
        }
        let handover = HandoverChannel(socket: serverSocket)
        do {
            let source = try ImageOpening.open(reference, platform: a["--platform"], registry: registry, cache: a["--cache"])
            let image = source.image
            let cache = try ImageOpening.cache(a["--cache"])
            var remote: RemoteLayers?
            let blobs: [LayerBlob]
            if let r = source.remote {
                let layers = try RemoteLayers(image: image, client: r.client, cache: cache, log: RemoteLogging.daemon)
                try layers.index()
                remote = layers
                blobs = layers.blobs
            } else {
                blobs = try ImageOpening.blobs(of: image)
            }
            // Replays the image's prefetch list at once, while the tree is built and mounted (the
            // link is what a lazy start waits on); records this mount's first reads into it. The
            // background fetch starts once the mount answers and the replay's first ranges (a
            // TOC's landmark) are in, so it does not share the link with them.
            let prefetch = remote.map { PrefetchSession($0) }
            let backgroundStart = Locked<(due: Int, fetch: BackgroundFetch?)>((2, nil))
            let backgroundStep: @Sendable () -> Void = {
                let start = backgroundStart.withLock { b -> BackgroundFetch? in
                    b.due -= 1
                    return b.due == 0 ? b.fetch : nil
                }
                start?.start()
            }
            prefetch?.start(afterExtra: backgroundStep)
            let recorder = a["--record-reads"] == nil ? nil : ReadRecorder()
            let lower = try ImageView.open(layers: blobs, cache: cache, readRecorder: recorder)
            let recordWriter = recorder.map {
                ReadRecordWriter(recorder: $0, tree: lower.tree, path: FileIO.absolute(a["--record-reads"]!),
                                 manifest: image.manifestDigest.description)
            }
            let fetch = remote.flatMap { background.enabled ? BackgroundFetch(layers: $0, bytesPerSecond: background.bytesPerSecond) : nil }
            // A local layer indexed from its TOC: its tar stream is checked against the TOC after the mount answers.
            let localCheck = remote == nil ? LocalTOCCheck(layers: lower.layers, cache: cache, enabled: background.enabled,
                                                           error: { Log.error($0) }, info: { Log.info($0) }) : nil
            backgroundStart.withLock { $0.fetch = fetch }
            if let remote, fetch == nil {
                for layer in remote.layers where layer.background == .pending { layer.markBackgroundOff() }
            }
            let statusReference = source.remote?.reference.description ?? reference
            let status: @Sendable () -> [UInt8] = if let remote {
                { (try? remote.status(mountpoint: mountpoint, reference: statusReference, background: fetch).encoded()) ?? [] }
            } else {
                { (try? MountStatus.local(mountpoint: mountpoint, reference: statusReference,
                                          manifestDigest: image.manifestDigest.description,
                                          layers: blobs.map { ($0.digestHex, $0.size) }).checking(localCheck).encoded()) ?? [] }
            }
            let statusServer = Locked<StatusServer?>(nil)
            var options = FuseMountOptions()
            options.allowOther = a.has("--allow-other")
            options.suid = a.has("--suid")
            options.readOnly = true
            var fileSystem: any FileSystem = lower
            if let upper = a["--upper"] {
                let upperPath = FileIO.absolute(upper)
                let work = a["--work"].map(FileIO.absolute) ?? Self.defaultWork(upper: upperPath)
                if takingOver {
                    // The previous server holds the upper's locks until it quits; it quits once
                    // the supervisor hears this server is ready.
                    var early = options
                    early.readOnly = false
                    try handover.hello(options: early)
                }
                fileSystem = try OverlayFileSystem(lower: lower, upper: upperPath, work: work, takingOver: takingOver)
                // The tree now changes: the kernel may not keep entries or pages for long.
                options.readOnly = false
                options.entryTimeout = 1
                options.attrTimeout = 1
                options.negativeTimeout = 1
                options.keepCache = false
                // A copy-up streams a whole file: other requests must not wait behind it.
                options.maxThreads = 8
            }
            options.fsName = "strata:\(image.manifestDigest)"
            let server = try FuseServer(fileSystem: fileSystem, mountpoint: mountpoint, options: options, takingOver: takingOver)
            try server.run(handover: handover, onReady: {
                if takingOver {
                    Log.info("serving \(mountpoint) again (pid \(getpid()))")
                } else {
                    Log.info("mounted \(reference) (\(image.manifestDigest)) at \(mountpoint)")
                }
                // A server taking over replaces the previous one's status socket.
                do { try statusServer.withLock { $0 = try StatusServer(mountpoint: mountpoint, status: status) } } catch {
                    Log.error("\(mountpoint): no status socket: \(error)")
                }
                recordWriter?.start()
                if prefetch != nil { backgroundStep() } else { fetch?.start() }
                localCheck?.start()
                if !takingOver && (a.has("--syslog") || a["--log"] != nil) {
                    // stderr was the starting command's: from now on only the log is read.
                    DaemonLog.detachStartupStderr(logFile: a["--log"].map(FileIO.absolute))
                }
            })
            prefetch?.stop()
            if server.handedOver {
                // Exit without tearing down: the file system's cleanup would remove the links
                // that keep open-but-unlinked files for the next server, and the status socket
                // is the next server's now.
                Log.info("handed \(mountpoint) over to a new server")
                exit(0)
            }
            fetch?.stop()
            localCheck?.stop()
            statusServer.withLock { $0?.stop() }
            Log.info("unmounted \(mountpoint)")
            recordWriter?.stop()
            if let statsPath = a["--stats"] {
                let compressed = blobs.reduce(UInt64(0)) { $0 + $1.size }
                let uncompressed = lower.layers.reduce(UInt64(0)) { $0 + $1.index.uncompressedSize }
                let json = "{\"inflatedBytes\":\(lower.inflatedBytes),\"servedBytes\":\(lower.servedBytes),\"compressedBytes\":\(compressed),\"uncompressedBytes\":\(uncompressed)}\n"
                try? FileIO.writeAtomically(statsPath, Array(json.utf8))
            }
            return 0
        } catch {
            // The supervisor logs it and reports it to the starting command.
            handover.reportFailure("\(error)")
            return 1
        }
    }

    /// The work directory beside the upper one: same parent, so the same file system.
    static func defaultWork(upper: String) -> String {
        var u = upper
        while u.count > 1 && u.hasSuffix("/") { u.removeLast() }
        return u + ".work"
    }
}

enum UnmountCommand {
    static let help = """
    usage: strata unmount MOUNTPOINT

    Unmounts a strata mount (file system type fuse.strata); anything else mounted at MOUNTPOINT
    is an error naming its type. A mount still in use (an open file, a working directory, a
    container's root) is not detached: the command fails with EBUSY and the PIDs using it. Also
    clears a stale mount whose daemon died ("Transport endpoint is not connected"). The daemon
    exits once its mount is gone; the command returns when its serving process has ended (what
    it writes at the end, such as the prefetch list in the cache, is then written), or after
    10 s.
    """

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: .init(valued: [], flags: []))
        guard a.positionals.count == 1 else { throw CLIError("unmount needs MOUNTPOINT (see strata unmount --help)") }
        let mountpoint = FileIO.absolute(a.positionals[0])
        let server = servingProcess(mountpoint)
        try FuseMount.unmount(mountpoint)
        if let server, !waitForExit(server, seconds: 10) { return }
        removeRunDirectory(mountpoint)
    }

    /// A daemon killed together with its supervisor leaves its run directory behind: it goes
    /// with the mount (a supervisor that exited normally removed it already).
    static func removeRunDirectory(_ mountpoint: String) {
        let directory = StatusServer.runDirectory(mountpoint: mountpoint)
        for name in [FuseSupervisor.serverPIDName, FuseSupervisor.socketName] { unlink(directory.path + "/" + name) }
        directory.remove(socket: directory.statusSocket)
    }

    /// The pid of the process serving the mount, as its supervisor recorded it.
    static func servingProcess(_ mountpoint: String) -> pid_t? {
        let path = SupervisorRunDirectory.path(for: mountpoint) + "/" + FuseSupervisor.serverPIDName
        guard let bytes = try? FileIO.readAll(path) else { return nil }
        return pid_t(String(decoding: bytes.filter { (0x30...0x39).contains($0) }, as: UTF8.self))
    }

    /// Polls until `pid` is gone (its supervisor reaps it at once), at most `seconds`; whether it is.
    @discardableResult
    static func waitForExit(_ pid: pid_t, seconds: Double) -> Bool {
        for _ in 0..<Int(seconds * 50) {
            if kill(pid, 0) != 0 && errno == ESRCH { return true }
            usleep(20_000)
        }
        return false
    }
}
