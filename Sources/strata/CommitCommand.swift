import StrataCodec
import StrataCommit
import StrataFuse
import StrataOCI
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

enum CommitCommand {
    static let help = """
    usage: strata commit [--compression gzip|zstd|none|estargz|zstd:chunked] [--message TEXT] [--lower MOUNTPOINT]
                         [--cache DIR] [--platform OS/ARCH[/VARIANT]] [--force] [--json] UPPER IMAGE NEWTAG

    Writes the changes recorded in UPPER as a new layer on top of IMAGE (DIR, DIR:TAG or
    DIR@sha256:HEX of an OCI image layout) and tags the result NEWTAG in the same layout.

    UPPER is an overlayfs upper directory (the upperdir= of an overlay mount whose lower is
    IMAGE, or of `strata mount --upper`), not mounted while committing: an UPPER whose lock a
    `strata mount --upper` holds is refused (unmount it first; --force overrides), and no mount
    can take it while the commit reads it. It is read as overlayfs writes it: a character
    device 0/0 is a deletion (written as .wh.NAME), a directory with xattr
    trusted.overlay.opaque="y" replaces the lower one (.wh..wh..opq), and a directory with
    trusted.overlay.redirect was renamed from a lower directory: it is written as a new opaque
    directory holding its whole merged subtree (the old name is deleted by the whiteout overlayfs
    left there). Other trusted.overlay.* attributes are overlay bookkeeping and are not stored.
    The upper directory's own metadata is not stored (it is the image root). Sockets are skipped.

    A renamed directory's children that were never copied up exist only in IMAGE. To read them,
    the command mounts IMAGE read-only itself (a strata mount on a temporary directory, removed
    afterwards), only when UPPER holds a renamed directory or a metacopy file; --lower names an
    existing strata mount of IMAGE to use instead.

    Entries are written in a fixed order (per directory: the directory, its opaque marker, its
    whiteouts, then the rest by name) with the files' own metadata, so the same upper gives the
    same layer bytes. The config's `created` time is now, or SOURCE_DATE_EPOCH when set.
    Blobs go first, index.json last: an interrupted commit leaves every existing tag valid.
    Prints the new manifest's digest.

      --compression C    layer compression: gzip (default), zstd or none, or a seekable format
                         with its table of contents, estargz or zstd:chunked (see
                         strata convert --help; the layer gets that format's annotations)
      --message TEXT     comment of the new history entry
      --lower DIR        a read-only strata mount of IMAGE to read renamed directories from
      --cache DIR        index cache for the temporary mount (as for strata mount)
      --platform P       platform to pick from an image index (default: this host's)
      --force            commit even while a mount holds UPPER's lock. Unsafe: writes in flight
                         can tear the layer (half a file, a rename seen on one side only)
      --json             print one JSON object: reference, tag, manifestDigest, configDigest,
                         layerDigest, layerSize, diffID, warnings
    """

    static let spec = Arguments.Spec(valued: ["--compression", "--message", "--lower", "--cache", "--platform"], flags: ["--force", "--json"])

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: spec)
        guard a.positionals.count == 3 else { throw CLIError("commit needs UPPER, IMAGE and NEWTAG (see strata commit --help)") }
        let (upper, reference, tag) = (a.positionals[0], a.positionals[1], a.positionals[2])
        let compressionName = a["--compression"] ?? "gzip"
        guard let encoding = LayerEncoding(name: compressionName) else {
            throw CLIError("unknown compression \"\(compressionName)\" (gzip, zstd, none, estargz or zstd:chunked)")
        }
        let base = try ImageOpening.resolve(reference, platform: a["--platform"])
        guard base.transport == .layout else {
            throw CLIError("\(reference): commit adds to an OCI layout directory, not to an archive; make one with `skopeo copy \(reference) oci:DIR:TAG`")
        }
        // Held until the layer is written: a live mount would change the upper mid-walk.
        let lock = a.has("--force") ? nil : try UpperLock.acquire(upper: upper)
        defer { withExtendedLifetime(lock) {} }

        var lower = a["--lower"]
        var temporaryMount: String?
        if lower == nil, try ImageCommitter.needsLower(upper: upper) {
            // The exact manifest resolved above, even if the tag moves meanwhile.
            let pinned = FileIO.absolute(base.layoutPath) + "@" + base.manifestDigest.description
            temporaryMount = try mountLower(pinned, cache: a["--cache"], platform: a["--platform"])
            lower = temporaryMount
        }
        let layer: PendingLayer
        do {
            defer { if let temporaryMount { release(temporaryMount) } }
            layer = try ImageCommitter.writeLayer(upper: upper, lowerRoot: lower, layoutPath: base.layoutPath,
                                                  encoding: encoding)
        }
        let result = try ImageCommitter.publish(layer, base: base, tag: tag, message: a["--message"],
                                                created: Timestamp.rfc3339(Timestamp.commitTime()))
        for warning in result.warnings { writeStandardError("strata: warning: \(warning)\n") }
        if a.has("--json") {
            try JSONOutput.print(CommitReport(reference: reference, tag: tag, manifestDigest: result.manifest.digest.description,
                                              configDigest: result.config.digest.description,
                                              layerDigest: result.layer.digest.description, layerSize: result.layer.size,
                                              diffID: result.diffID.description, warnings: result.warnings))
            return
        }
        print(result.manifest.digest)
    }

    /// Mounts `reference` read-only on a fresh directory, the way `strata mount` does.
    private static func mountLower(_ reference: String, cache: String?, platform: String?) throws -> String {
        let parent = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        let mountpoint: String
        do { mountpoint = try FileIO.makeTemporaryDirectory(in: parent, prefix: "strata-commit-lower-") } catch {
            throw CLIError("\(parent): cannot create a temporary mountpoint: \(error.message)")
        }
        var args = ["mount", "--foreground"]
        if let cache { args += ["--cache", FileIO.absolute(cache)] }
        if let platform { args += ["--platform", platform] }
        args += [reference, mountpoint]
        do {
            let child = try Daemon.spawnDetached(arguments: args)
            if case .failure(let error) = Daemon.waitReady(child.readiness) {
                throw CLIError("cannot mount \(reference) to read renamed directories: \(error)")
            }
        } catch {
            try? FileDescriptor.currentDirectory.unlink(at: mountpoint, directory: true)
            throw error
        }
        return mountpoint
    }

    private static func release(_ mountpoint: String) {
        do {
            try FuseMount.unmount(mountpoint)
            try? FileDescriptor.currentDirectory.unlink(at: mountpoint, directory: true)
        } catch {
            writeStandardError("strata: warning: could not unmount the temporary lower mount \(mountpoint): \(error)\n")
        }
    }
}
