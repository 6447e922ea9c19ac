import StrataFS
import StrataIndex
import StrataOCI
import StrataRemote
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

enum IndexCommand {
    static let help = """
    usage: strata index [--cache DIR] [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [--authfile FILE]
                        [--creds USER[:PASS]] [--pull=always|missing|never] [--push] [--json] IMAGE

    Reads every layer of IMAGE once, verifies its size, sha256 digest and diff_id (the sha256 of
    the uncompressed tar, which the image config lists in rootfs.diff_ids), and stores its index
    (tar entries, data offsets, decompression checkpoints) in the cache, then the merged tree of
    the image's layers (the union a mount serves). Layers already indexed are checked and kept
    (their diff_id against the one recorded when they were indexed). A local eStargz or
    zstd:chunked layer is indexed from its table of contents, then its stream is inflated once
    to check its diff_id and that it holds every TOC entry as given: a TOC that lies fails the
    command naming the layer, and its index is not kept (once checked, a layer is not again).
    IMAGE is DIR, DIR:TAG or DIR@sha256:HEX of an OCI image layout, or an image archive read in
    place: oci-archive:FILE[:TAG] or docker-archive:FILE[:REPO:TAG], or a registry's image:
    docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] (each unindexed layer streams once into the
    cache's lazy blobs, indexed and verified as it downloads).

      --cache DIR        index cache (as for strata mount)
      --platform P       platform to pick from an image index (default: this host's)
    \(RegistryFlags.help)
    \(RegistryFlags.pullHelp)
      --push             then publish the indexes to IMAGE's registry (a docker:// IMAGE), so
                         other machines mount it lazily: an OCI artifact (artifactType
                         application/vnd.strata.index.v1+json, one blob per layer index, and the
                         prefetch list recorded by this cache's mounts, if any) whose subject is
                         the image manifest, also listed in the referrers fallback tag
                         sha256-<manifest hex> (other referrers kept). Prints its digest last.
                         Needs push access to the repository. A gzip layer's published index has
                         a checkpoint every 256 KiB of tar (a local one: every 1 MiB), so a start
                         fetches less around each small file; this cache's index of it is made
                         so first, and kept.
      --json             print one JSON object: reference, manifestDigest, layers (digest,
                         compression, entries, checkpoints, uncompressedSize, indexSize, built),
                         mergedTree (inodes, size, built) and, with --push, artifact
    """

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(RegistryFlags.normalize(args),
                              spec: .init(valued: Set(["--cache", "--platform"]).union(RegistryFlags.valued), flags: ["--json", "--push"]))
        let registry = try RegistryFlags(a)
        guard a.positionals.count == 1 else { throw CLIError("index needs one IMAGE (see strata index --help)") }
        let source = try ImageOpening.open(a.positionals[0], platform: a["--platform"], registry: registry, cache: a["--cache"])
        if a.has("--push"), source.remote == nil {
            throw CLIError("--push publishes to a registry: IMAGE must be docker://HOST/REPO[:TAG|@DIGEST]", usage: true)
        }
        let image = source.image
        let cache = try ImageOpening.cache(a["--cache"])
        // Only indexes made (or confirmed) here are published: unconfirmed ones from an artifact
        // are built again from their blobs.
        if a.has("--push") { IndexArtifacts.dropUnconfirmed(image: image, cache: cache) }
        let blobs: [LayerBlob]
        if let r = source.remote {
            // Layers not cached stream once (indexed as they download); the rest stay as they are.
            let layers = try RemoteLayers(image: image, client: r.client, cache: cache, log: RemoteLogging.command)
            blobs = layers.blobs
        } else {
            blobs = try ImageOpening.blobs(of: image)
        }
        let json = a.has("--json")
        let progress = Progress(total: blobs.count, label: "layers indexed")
        let lock = Lock()
        let results = parallelMap(blobs.count) { i in
            defer { lock.withLock { progress.step() } }
            var opened = try cache.index(blobs[i])
            // A published gzip index is denser than a local one (`publishedCheckpointSpacing`).
            if a.has("--push"), IndexArtifacts.needsPublishedSpacing(opened.index) {
                opened = (try cache.build(blobs[i], checkpointSpacing: IndexArtifacts.publishedCheckpointSpacing), true)
            }
            // A local layer indexed from its TOC: its stream is checked against the TOC now.
            if source.remote == nil { try LocalTOCCheck.checkNow(blobs[i], index: opened.index, cache: cache) }
            return opened
        }
        progress.done()
        var opened: [(index: LayerIndex, built: Bool)] = []
        var layers: [IndexReport.Layer] = []
        for (i, r) in results.enumerated() {
            let (index, built) = try r.get()
            opened.append((index, built))
            let size = UInt64(index.file.bytes.count)
            layers.append(.init(digest: "sha256:\(blobs[i].digestHex)", compression: blobs[i].compression.rawValue,
                                entries: index.entryCount, checkpoints: index.checkpointCount,
                                uncompressedSize: index.uncompressedSize, indexSize: size, copySize: index.copySize, built: built))
            if json { continue }
            print("sha256:\(blobs[i].digestHex)  \(blobs[i].compression.rawValue)  \(index.entryCount) entries  \(index.checkpointCount) checkpoints  \(Format.bytes(index.uncompressedSize)) tar  index \(Format.bytes(size))\(index.copySize > 0 ? "  copy \(Format.bytes(index.copySize))" : "")  \(built ? "indexed" : "cached")")
        }
        let (tree, built) = try ImageView.mergedTree(opened.map(\.index), built: opened.map(\.built), cache: cache)
        // Every layer's index is now one made from its verified blob here (an unconfirmed one
        // from an artifact is rebuilt by `cache.index`), so that is what gets published.
        let artifact = try source.remote.map { r in a.has("--push") ? try IndexArtifacts.push(image: image, client: r.client, cache: cache) : nil } ?? nil
        if json {
            try JSONOutput.print(IndexReport(reference: a.positionals[0], manifestDigest: image.manifestDigest.description,
                                             layers: layers, mergedTree: .init(inodes: tree.inodeCount, size: tree.byteCount, built: built),
                                             artifact: artifact?.description))
            return
        }
        print("merged tree  \(tree.inodeCount) inodes  \(Format.bytes(UInt64(tree.byteCount)))  \(built ? "built" : "cached")")
        if let artifact { print(artifact.description) }
    }
}

/// A one-line progress bar on a terminal; silent otherwise.
final class Progress {
    let total: Int
    let label: String
    var count = 0
    let enabled = isatty(2) != 0
    init(total: Int, label: String) {
        self.total = total
        self.label = label
        draw()
    }
    func step() { count += 1; draw() }
    func draw() {
        guard enabled, total > 0 else { return }
        let width = 30
        let filled = width * count / total
        let bar = String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
        writeStandardError("\r[\(bar)] \(count)/\(total) \(label)")
    }
    func done() { if enabled { writeStandardError("\n") } }
}

enum Format {
    static func bytes(_ n: UInt64) -> String {
        if n < 1024 { return "\(n) B" }
        let units = ["KiB", "MiB", "GiB", "TiB"]
        var v = Double(n) / 1024
        var u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        let tenths = Int((v * 10).rounded())
        return "\(tenths / 10).\(tenths % 10) \(units[u])"
    }
}
