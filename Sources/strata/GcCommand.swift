import StrataSnapshot
import StrataSystem

enum GcCommand {
    static let help = """
    usage: strata gc [--root DIR] [--cache-max SIZE] [--cache DIR] [--json]

    Removes from the snapshot store (see strata snapshot --help) what nothing references:
    layer, config and manifest blobs no snapshot and no tag in ROOT/layout uses, their indexes
    and decoded copies in ROOT/cache, snapshot directories and snap-<id> tags left by an
    interrupted command, and temporary files older than an hour. Refused while the state is
    inconsistent (see strata snapshot check).

    With --cache-max, the cache is then trimmed to SIZE bytes (suffix K, M, G or T for
    binary multiples) by removing the index and decoded files of the least recently used
    layers first; a layer counts as used when a snapshot on it is mounted. Layers of
    snapshots mounted now are kept. A removed index is rebuilt on the next mount.

      --root DIR         the store (default /var/lib/strata)
      --cache-max SIZE   size limit of the cache
      --cache DIR        the cache the limit applies to (default ROOT/cache); a cache other
                         than the store's own is only trimmed by use, never by reference
      --json             print one JSON object: blobsRemoved, blobBytes, cacheFilesRemoved,
                         cacheBytes, evicted, evictedBytes, cacheSize, tagsRemoved,
                         directoriesRemoved
    """

    static let spec = Arguments.Spec(valued: ["--root", "--cache-max", "--cache"], flags: ["--json"])

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: spec)
        guard a.positionals.isEmpty else { throw CLIError("gc takes no arguments (see strata gc --help)") }
        let limit = try a["--cache-max"].map(parseSize)
        let store = SnapshotStore(root: FileIO.absolute(a["--root"] ?? SnapshotCommand.defaultRoot),
                                  mounter: ProcessSnapshotMounter())
        store.warn = { writeStandardError("strata: warning: \($0)\n") }
        let r = try store.collectGarbage(cacheMax: limit, cacheDirectory: a["--cache"].map(FileIO.absolute))
        if a.has("--json") {
            try JSONOutput.print(GCReportJSON(blobsRemoved: r.blobsRemoved, blobBytes: r.blobBytes,
                                              cacheFilesRemoved: r.cacheFilesRemoved, cacheBytes: r.cacheBytes,
                                              evicted: r.evicted, evictedBytes: r.evictedBytes, cacheSize: r.cacheSize,
                                              tagsRemoved: r.tagsRemoved, directoriesRemoved: r.directoriesRemoved))
            return
        }
        print("blobs removed        \(r.blobsRemoved) (\(r.blobBytes) bytes)")
        print("cache files removed  \(r.cacheFilesRemoved) (\(r.cacheBytes) bytes)")
        print("cache files evicted  \(r.evicted) (\(r.evictedBytes) bytes)")
        print("cache size           \(r.cacheSize) bytes")
        for tag in r.tagsRemoved { print("tag removed          \(tag)") }
        for dir in r.directoriesRemoved { print("directory removed    \(dir)") }
    }

    static func parseSize(_ text: String) throws -> Int64 {
        let units: [Character: Int64] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40]
        var digits = Substring(text)
        var multiplier: Int64 = 1
        if let last = digits.last?.uppercased().first, let unit = units[last] {
            multiplier = unit
            digits = digits.dropLast()
        }
        guard let value = Int64(digits), value >= 0, value <= Int64.max / multiplier else {
            throw CLIError("--cache-max \"\(text)\": not a size (bytes, or a number with K, M, G or T)")
        }
        return value * multiplier
    }
}
