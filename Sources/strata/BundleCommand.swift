import Foundation
import StrataBundle
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataRemote
import StrataSystem

enum BundleCommand {
    static let help = """
    usage: strata bundle [--cache DIR] [--platform OS/ARCH[/VARIANT]] [--upper DIR | --read-only] [--stats FILE]
                         [--env K=V]... [--workdir DIR] [--user U[:G]] [--hostname H] [--tty]
                         [--mount SRC:DST[:ro]]... [--tls-verify=false] [--authfile FILE] [--creds USER[:PASS]] [--pull=always|missing|never]
                         [--json] IMAGE BUNDLE [-- CMD [ARG...]]
           strata bundle --remove [--json] BUNDLE

    Makes BUNDLE an OCI runtime bundle for IMAGE without extracting it: mounts the image at
    BUNDLE/rootfs and writes BUNDLE/config.json, so `runc run --bundle BUNDLE ID` or
    `crun run --bundle BUNDLE ID` starts the image's default command. BUNDLE is created if
    missing (its parent must exist); a BUNDLE already made by strata bundle is an error.

    config.json follows the image-spec's conversion.md: process.args from Entrypoint and Cmd,
    env from Env (plus PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin when
    Env has no PATH), cwd from WorkingDir (default /), user from User resolved through the
    image's own /etc/passwd and /etc/group (additionalGids for a user given by name alone),
    hostname from Hostname, annotations from Labels and the org.opencontainers.image.* keys
    (os, architecture, created, author, stopSignal, exposedPorts...). Namespaces, mounts,
    capabilities, rlimits, masked and read-only paths are those of `runc spec`. Volumes are
    not mounted: writes to them go to the upper like any other. A malformed or unresolvable
    config value is an error naming its field. As umoci does, env gets TERM=xterm and HOME
    (the user's home in the image's /etc/passwd, else /) unless it sets them, and an image
    that names no program runs `sh` (with a note on stderr).

    IMAGE is a layout (DIR, DIR:TAG, DIR@DIGEST) or an archive read in place
    (oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG]), or an image in a registry
    (docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX], mounted lazily, at the manifest digest the
    tag resolved to when the bundle was made), as for strata mount.

    As with podman run, these replace what the image's config says:
      --env K=V        set variable K (repeatable); replaces the image's K
      --workdir DIR    process.cwd (absolute)
      --user U[:G]     user and group, names resolved in the image's /etc/passwd, /etc/group
      --hostname H     the container's hostname
      --tty            process.terminal true (run it from a terminal: runc run needs one)
      --mount SRC:DST[:ro]
                       bind-mount host SRC at DST (rbind, read-write unless :ro); repeatable
      -- CMD [ARG...]  the process to run, replacing the image's Entrypoint and Cmd

      --cache DIR      index cache (as for strata mount)
      --platform P     platform to pick from an image index (default: this host's)
      --upper DIR      keep the container's writes in DIR (created if missing, kept by
                       --remove, its work directory DIR.work beside it) instead of
                       BUNDLE/upper (with BUNDLE/work)
      --read-only      no upper: the root filesystem is read-only (root.readonly is true)
      --stats FILE     at unmount, the mount writes what serving the rootfs cost to FILE
                       (JSON: bytes of layer data inflated, image sizes)
    \(RegistryFlags.help)
    \(RegistryFlags.pullHelp)
      --remove         unmount BUNDLE/rootfs and remove what strata bundle made there:
                       config.json, rootfs, BUNDLE/upper and BUNDLE/work, and BUNDLE itself
                       if it made it.
                       A --upper DIR stays. Refused, removing nothing, while runc or
                       crun (state in /run/runc, /run/crun) still has a container on
                       BUNDLE, or while the rootfs is in use: delete the bundle's
                       containers first (runc delete ID).
      --json           print one JSON object: bundle, manifestDigest, rootfs, upper (null when
                       read-only), removed (true after --remove)
    """

    static let spec = Arguments.Spec(valued: Set(["--cache", "--platform", "--upper", "--stats", "--env", "--workdir", "--user",
                                                  "--hostname", "--mount"]).union(RegistryFlags.valued),
                                     flags: ["--read-only", "--remove", "--tty", "--json"])

    /// Options that only shape config.json (not allowed with --remove).
    static let configOptions = ["--env", "--workdir", "--user", "--hostname", "--mount"]

    /// Splits `OPTIONS... IMAGE BUNDLE -- CMD ARGS...` at the first `--` that is not an option's value.
    static func splitCommand(_ args: ArraySlice<String>) -> (ArraySlice<String>, [String]?) {
        var i = args.startIndex
        while i < args.endIndex {
            let arg = args[i]
            if arg == "--" { return (args[args.startIndex..<i], Array(args[(i + 1)...])) }
            if spec.valued.contains(arg) && arg != "--tls-verify" { i += 1 }
            i += 1
        }
        return (args, nil)
    }

    static func run(_ args: ArraySlice<String>) throws {
        let (optionArgs, command) = splitCommand(args)
        let a = try Arguments(RegistryFlags.normalize(optionArgs), spec: spec)
        let registry = try RegistryFlags(a)
        if a.has("--remove") {
            guard a.positionals.count == 1 else { throw CLIError("bundle --remove needs one BUNDLE (see strata bundle --help)") }
            for option in ["--cache", "--platform", "--upper", "--stats", "--tls-verify", "--authfile", "--creds"] where a[option] != nil {
                throw CLIError("option \(option) does not go with --remove")
            }
            for option in configOptions where !a.all(option).isEmpty {
                throw CLIError("option \(option) does not go with --remove")
            }
            guard !a.has("--read-only") else { throw CLIError("option --read-only does not go with --remove") }
            guard !a.has("--tty") else { throw CLIError("option --tty does not go with --remove") }
            guard command == nil else { throw CLIError("a command (after --) does not go with --remove") }
            try BundleBuilder.remove(directory: FileIO.absolute(a.positionals[0]), mounter: StrataProcessMounter(),
                                     containers: RuntimeContainers.using(bundle:))
            if a.has("--json") {
                try JSONOutput.print(BundleReport(bundle: FileIO.absolute(a.positionals[0]), removed: true))
            }
            return
        }
        guard a.positionals.count == 2 else { throw CLIError("bundle needs IMAGE and BUNDLE (see strata bundle --help)") }
        if a.has("--read-only") && a["--upper"] != nil {
            throw CLIError("--upper and --read-only exclude each other")
        }
        if let command, command.isEmpty { throw CLIError("no command after -- (see strata bundle --help)") }
        let given = ImageOpening.absoluteReference(a.positionals[0])
        let directory = FileIO.absolute(a.positionals[1])
        // A tag this cache resolved before is mounted at once while the registry is asked
        // (`--pull=always`); if the tag has moved, that bundle is removed and made again.
        let lookup = TagLookup.start(given, platform: a["--platform"], registry: registry, cache: a["--cache"])
        var source = try lookup.kept ?? lookup.resolved()
        var image = source.image
        // A docker:// image's published indexes are looked for and installed here while the
        // mount's daemon starts (two process starts); the mount waits on the same lock and
        // finds them. Waited for before this command ends, so nothing is left half-written.
        let pullingAhead = try source.remote.map { remote in
            try PullAhead(image: image, client: remote.client, cache: ImageOpening.cache(a["--cache"]))
        }
        defer { pullingAhead?.wait() }
        // A docker:// tag is pinned: the mount serves the manifest resolved here.
        let reference = source.pinnedReference ?? given
        var options = BundleOptions(env: a.all("--env"), workdir: a["--workdir"], user: a["--user"], hostname: a["--hostname"],
                                    tty: a.has("--tty"), command: command)
        for text in a.all("--mount") {
            // SRC relative to here, as podman takes it; it must exist for the runtime to bind it.
            guard let colon = text.firstIndex(of: ":") else { throw CLIError("--mount \"\(text)\": expected SRC:DST or SRC:DST:ro") }
            let source = FileIO.absolute(String(text[..<colon]))
            guard FileIO.exists(source) else { throw CLIError("--mount \"\(text)\": \(source) does not exist") }
            options.mounts.append(try BundleOptions.bindMount(source + text[colon...]))
        }
        let c = image.config.config
        if command == nil && (c?.entrypoint ?? []).isEmpty && (c?.cmd ?? []).isEmpty {
            writeStandardError("strata: note: the image names no command (no Entrypoint or Cmd): the bundle runs \(BundleOptions.defaultCommand) as umoci's does; give one after --\n")
        }
        let upper: UpperChoice = if a.has("--read-only") {
            .none
        } else if let dir = a["--upper"] {
            .directory(FileIO.absolute(dir))
        } else {
            .inBundle
        }
        var mounter = StrataProcessMounter(cache: a["--cache"].map(FileIO.absolute), platform: a["--platform"],
                                           stats: a["--stats"].map(FileIO.absolute),
                                           suid: StrataProcessMounter.suidForContainers)
        if source.remote != nil {
            mounter.extraArguments = registry.arguments
            registry.exportCreds()
        }
        var request = BundleBuilder.Request(image: reference, config: image.config,
                                            manifestDigest: image.manifestDigest.description,
                                            directory: directory, upper: upper, options: options)
        var record = try BundleBuilder.create(request, mounter: mounter)
        if lookup.kept != nil {
            let current: ImageOpening.Source
            do { current = try lookup.resolved() } catch {
                try? BundleBuilder.remove(directory: directory, mounter: StrataProcessMounter(), containers: RuntimeContainers.using(bundle:))
                throw error
            }
            if current.image.manifestDigest != image.manifestDigest {
                try BundleBuilder.remove(directory: directory, mounter: StrataProcessMounter(), containers: RuntimeContainers.using(bundle:))
                source = current
                image = current.image
                request.image = source.pinnedReference ?? given
                request.config = image.config
                request.manifestDigest = image.manifestDigest.description
                record = try BundleBuilder.create(request, mounter: mounter)
            }
        }
        if a.has("--json") {
            try JSONOutput.print(BundleReport(bundle: directory, manifestDigest: image.manifestDigest.description,
                                              rootfs: directory + "/rootfs", upper: record.upper, removed: false))
            return
        }
        print("bundle    \(directory)")
        print("image     \(image.manifestDigest)")
        print("rootfs    \(directory)/rootfs")
        print("upper     \(record.upper ?? "none (read-only)")")
    }
}

/// `RemoteLayers.pullIndexesAhead` on a thread of its own (as `TagLookup` asks the registry).
private final class PullAhead: Sendable {
    private let done = Locked(false)

    init(image: ResolvedImage, client: RegistryClient, cache: LayerCache) {
        Thread.detachNewThread { [done] in
            RemoteLayers.pullIndexesAhead(image: image, client: client, cache: cache)
            done.withLock { $0 = true }
            done.broadcast()
        }
    }

    func wait() { done.withLock(when: { $0 }) { _ in } }
}
