#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataIndex
import StrataOCI

enum InspectCommand {
    static let help = """
    usage: strata inspect [--cache DIR] [--platform OS/ARCH[/VARIANT]] [--tls-verify=false] [--authfile FILE]
                          [--creds USER[:PASS]] [--pull=always|missing|never] [--json] IMAGE

    Shows the manifest digest, platform, a summary of the config, and for each layer its media
    type, compressed size, uncompressed size and whether its index is in the cache. Reads no
    layer data. IMAGE is as for strata mount, docker:// references included (then only the
    manifest and config are fetched).

      --cache DIR        index cache (as for strata mount)
      --platform P       platform to pick from an image index (default: this host's)
    \(RegistryFlags.help)
    \(RegistryFlags.pullHelp)
      --json             print one JSON object: reference, manifestDigest, platform, created,
                         entrypoint, cmd, env, workingDir, user, labels, layers (digest,
                         mediaType, size, uncompressedSize, entries, indexed)
    """

    struct Report: Encodable {
        struct Layer: Encodable {
            var digest: String
            var mediaType: String
            var size: Int64
            var uncompressedSize: UInt64?
            var entries: Int?
            var indexed: Bool
        }
        var reference: String
        var manifestDigest: String
        var platform: String
        var created: String?
        var entrypoint: [String]?
        var cmd: [String]?
        var env: [String]?
        var workingDir: String?
        var user: String?
        var labels: [String: String]?
        var layers: [Layer]
    }

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(RegistryFlags.normalize(args),
                              spec: .init(valued: Set(["--cache", "--platform"]).union(RegistryFlags.valued), flags: ["--json"]))
        let registry = try RegistryFlags(a)
        guard a.positionals.count == 1 else { throw CLIError("inspect needs one IMAGE (see strata inspect --help)") }
        let image = try ImageOpening.open(a.positionals[0], platform: a["--platform"], registry: registry, cache: a["--cache"]).image
        let cache = try ImageOpening.cache(a["--cache"])
        let layers = image.layers.map { layer -> Report.Layer in
            let index = cache.load(digestHex: layer.descriptor.digest.hex)
            return Report.Layer(digest: layer.descriptor.digest.description, mediaType: layer.descriptor.mediaType,
                                size: layer.descriptor.size, uncompressedSize: index?.uncompressedSize,
                                entries: index?.entryCount, indexed: index != nil)
        }
        let c = image.config.config
        let report = Report(reference: a.positionals[0], manifestDigest: image.manifestDigest.description,
                            platform: image.platform.description, created: image.config.created,
                            entrypoint: c?.entrypoint, cmd: c?.cmd, env: c?.env, workingDir: c?.workingDir,
                            user: c?.user, labels: c?.labels, layers: layers)
        if a.has("--json") {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("image     \(report.reference)")
        print("manifest  \(report.manifestDigest)")
        print("platform  \(report.platform)")
        if let created = report.created { print("created   \(created)") }
        if let e = report.entrypoint { print("entrypoint \(e)") }
        if let cmd = report.cmd { print("cmd       \(cmd)") }
        if let w = report.workingDir, !w.isEmpty { print("workdir   \(w)") }
        if let u = report.user, !u.isEmpty { print("user      \(u)") }
        for e in report.env ?? [] { print("env       \(e)") }
        for (k, v) in (report.labels ?? [:]).sorted(by: { $0.key < $1.key }) { print("label     \(k)=\(v)") }
        print("layers    \(layers.count)")
        for (i, l) in layers.enumerated() {
            let unpacked = l.uncompressedSize.map { Format.bytes($0) } ?? "?"
            print("  \(i)  \(l.digest)  \(l.mediaType)  \(Format.bytes(UInt64(l.size))) → \(unpacked)  \(l.indexed ? "indexed (\(l.entries ?? 0) entries)" : "not indexed")")
        }
    }
}
