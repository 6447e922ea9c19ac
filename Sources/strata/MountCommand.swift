import StrataFS
import StrataFuse
import StrataIndex
import StrataSystem
import StrataUpper
#if canImport(Glibc)
import Glibc
#endif

enum MountCommand {
    static let help = """
    usage: strata mount [--cache DIR] [--platform OS/ARCH[/VARIANT]] [--allow-other] [--suid] [--foreground]
                     [--upper DIR [--work DIR]] IMAGE MOUNTPOINT

    Mounts IMAGE (DIR, DIR:TAG or DIR@sha256:HEX of an OCI image layout; oci-archive:FILE[:TAG] or
    docker-archive:FILE[:REPO:TAG], an image archive read in place) read-only at MOUNTPOINT
    as the union of its layers, without extracting them. Layers not yet indexed are read once
    (and verified against their digests); later mounts use the cached index and read no layer data.
    The daemon goes to the background; the command exits 0 once the mount answers, or prints the
    error and exits non-zero with nothing mounted.

      --cache DIR        index cache (default /var/cache/strata as root, else $XDG_CACHE_HOME/strata)
      --platform P       platform to pick from an image index (default: this host's)
      --allow-other      let other users (a runtime running as another user) see the mount
      --suid             honour setuid and setgid bits (root only). Without it the mount is nosuid,
                         as FUSE mounts are by default; it is always nodev. `strata bundle` and
                         snapshot mounts, which are container roots, use it when run as root.
      --foreground       stay in the foreground; SIGINT or SIGTERM unmounts and exits
      --stats FILE       at unmount, write what serving cost to FILE (JSON: bytes of layer data
                         inflated, the image's compressed and uncompressed sizes)
      --upper DIR        mount writable: every change goes to DIR (created if missing), in kernel
                         overlayfs's upper-directory format; the image stays untouched. A DIR from
                         an earlier mount is reused. One mount at a time per DIR.
      --work DIR         scratch directory for copy-ups, on DIR's file system (default: DIR.work)

    podman: `podman run --rootfs MOUNTPOINT:O ...` runs a container on a read-only mount (podman
    puts its own overlay on top for the files it creates, such as /etc/mtab); a mount made with
    --upper DIR takes `podman run --rootfs MOUNTPOINT ...` directly, podman's files going to DIR.
    """

    static let spec = Arguments.Spec(valued: ["--cache", "--platform", "--ready-fd", "--stats", "--upper", "--work"],
                                     flags: ["--allow-other", "--foreground", "--suid"])

    static func run(_ args: ArraySlice<String>) throws -> Int32 {
        let a = try Arguments(args, spec: spec)
        guard a.positionals.count == 2 else { throw CLIError("mount needs IMAGE and MOUNTPOINT (see strata mount --help)") }
        let reference = a.positionals[0]
        let mountpoint = absolute(a.positionals[1])
        guard !FuseMount.isMounted(mountpoint) else { throw CLIError("mountpoint \(mountpoint) is already mounted") }
        guard FileIO.exists(mountpoint) else { throw CLIError("mountpoint \(mountpoint) does not exist") }
        guard FileIO.isDirectory(mountpoint) else { throw CLIError("mountpoint \(mountpoint) is not a directory") }
        guard !a.has("--suid") || geteuid() == 0 else { throw CLIError("--suid needs root (fusermount3 mounts nosuid for other users)") }

        if !a.has("--foreground") {
            // Re-run ourselves detached, in the foreground mode, and wait for its word.
            var childArgs = ["mount", "--foreground"]
            if let c = a["--cache"] { childArgs += ["--cache", absolute(c)] }
            if let p = a["--platform"] { childArgs += ["--platform", p] }
            if a.has("--allow-other") { childArgs.append("--allow-other") }
            if a.has("--suid") { childArgs.append("--suid") }
            if let u = a["--upper"] { childArgs += ["--upper", absolute(u)] }
            if let w = a["--work"] { childArgs += ["--work", absolute(w)] }
            if let s = a["--stats"] { childArgs += ["--stats", absolute(s)] }
            childArgs += [absoluteReference(reference), mountpoint]
            let child = try Daemon.spawnDetached(arguments: childArgs)
            switch Daemon.waitReady(child.readiness) {
            case .success: return 0
            case .failure(let message):
                // The daemon failed before it was ready; it unmounted what it had mounted.
                throw CLIError(message.description)
            }
        }

        // The daemon: signals must be blocked before any thread starts (indexing starts some).
        FuseServer.blockShutdownSignals()
        let ready = a["--ready-fd"].flatMap { Int32($0) }.map { FileDescriptor(rawValue: $0) }
        do {
            let image = try ImageOpening.resolve(reference, platform: a["--platform"])
            let blobs = try ImageOpening.blobs(of: image)
            let cache = try ImageOpening.cache(a["--cache"])
            let lower = try ImageView.open(layers: blobs, cache: cache)
            var options = FuseMountOptions()
            options.allowOther = a.has("--allow-other")
            options.suid = a.has("--suid")
            options.readOnly = true
            var fileSystem: any FileSystem = lower
            if let upper = a["--upper"] {
                let upperPath = absolute(upper)
                let work = a["--work"].map(absolute) ?? Self.defaultWork(upper: upperPath)
                fileSystem = try OverlayFileSystem(lower: lower, upper: upperPath, work: work)
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
            let server = try FuseServer(fileSystem: fileSystem, mountpoint: mountpoint, options: options)
            try server.run(onReady: {
                if let ready { Daemon.reportReady(fd: ready) }
            })
            if let statsPath = a["--stats"] {
                let compressed = blobs.reduce(UInt64(0)) { $0 + $1.size }
                let uncompressed = lower.layers.reduce(UInt64(0)) { $0 + $1.index.uncompressedSize }
                let json = "{\"inflatedBytes\":\(lower.inflatedBytes),\"compressedBytes\":\(compressed),\"uncompressedBytes\":\(uncompressed)}\n"
                try? FileIO.writeAtomically(statsPath, Array(json.utf8))
            }
            return 0
        } catch {
            if let ready {
                Daemon.reportError(fd: ready, message: "\(error)")
                return 1
            }
            throw error
        }
    }

    /// The work directory beside the upper one: same parent, so the same file system.
    static func defaultWork(upper: String) -> String {
        var u = upper
        while u.count > 1 && u.hasSuffix("/") { u.removeLast() }
        return u + ".work"
    }

    static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return path }
        let cwd = String(cString: buffer)
        return cwd == "/" ? "/" + path : cwd + "/" + path
    }

    /// The daemon runs from "/", so a relative layout directory must be made absolute; the
    /// `:TAG` or `@DIGEST` suffix stays as it is.
    static func absoluteReference(_ reference: String) -> String {
        ImageOpening.absoluteReference(reference)
    }
}

enum UnmountCommand {
    static let help = """
    usage: strata unmount MOUNTPOINT

    Unmounts a strata mount (file system type fuse.strata); anything else mounted at MOUNTPOINT
    is an error naming its type. A mount still in use (an open file, a working directory, a
    container's root) is not detached: the command fails with EBUSY and the PIDs using it. Also
    clears a stale mount whose daemon died ("Transport endpoint is not connected"). The daemon
    exits once its mount is gone.
    """

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: .init(valued: [], flags: []))
        guard a.positionals.count == 1 else { throw CLIError("unmount needs MOUNTPOINT (see strata unmount --help)") }
        try FuseMount.unmount(MountCommand.absolute(a.positionals[0]))
    }
}
