import StrataRemote
import StrataSystem

enum StatusCommand {
    static let help = """
    usage: strata status [--json] MOUNTPOINT

    Shows what the strata mount at MOUNTPOINT has of its image: per layer the bytes of the blob
    present in the cache out of its size, where its index came from (the cache, an index
    published in the registry, or built while the whole blob streamed: then the layer was not
    lazy, and the reason is shown), the background fetch (pending, running, done, off) and the
    verification of the whole blob (pending, verified, failed: reads of a failed layer get EIO),
    bytes fetched on demand, by prefetch and in the background, and requests made. A mount of a
    local layout or archive has every blob present; its eStargz / zstd:chunked layers indexed
    from their TOC show the check of their stream against the TOC as background and
    verification ("not needed" / verified once a mount or `strata index` checked it). Asked
    over the mount's status socket, in /run/strata/mounts/ (as root) or
    $XDG_RUNTIME_DIR/strata/mounts/.

      --json             print one JSON object: mountpoint, reference, manifestDigest, source
                         (registry or local), backgroundFetch, backgroundBytesPerSecond,
                         requests, bytesReceived, layers (digest, size, present, complete,
                         index, lazy, notLazyReason, background, verification, onDemandBytes,
                         prefetchBytes, backgroundBytes, requests, error)
    """

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: .init(valued: [], flags: ["--json"]))
        guard a.positionals.count == 1 else { throw CLIError("status needs one MOUNTPOINT (see strata status --help)") }
        let status = try StatusServer.query(mountpoint: FileIO.absolute(a.positionals[0]))
        if a.has("--json") {
            try JSONOutput.print(status)
            return
        }
        print("mount       \(status.mountpoint)")
        print("image       \(status.reference)")
        print("manifest    \(status.manifestDigest)")
        print("source      \(status.source)")
        if status.source == "registry" {
            let cap = status.backgroundBytesPerSecond.map { "\(Format.bytes($0))/s" } ?? "uncapped"
            print("background  \(status.backgroundFetch)\(status.backgroundFetch == "on" ? " (\(cap))" : "")")
            print("requests    \(status.requests) (\(Format.bytes(status.bytesReceived)) received)")
        }
        for (i, l) in status.layers.enumerated() {
            let percent = l.size == 0 ? 100 : Int(l.present * 100 / l.size)
            print("  \(i)  \(l.digest)  \(Format.bytes(l.present)) / \(Format.bytes(l.size)) (\(percent)%)  index \(l.index)  background \(l.background)  \(l.verification)")
            if status.source == "registry" {
                print("       on demand \(Format.bytes(l.onDemandBytes))  prefetch \(Format.bytes(l.prefetchBytes))  background \(Format.bytes(l.backgroundBytes))  \(l.requests) requests")
            }
            if let reason = l.notLazyReason { print("       not lazy: \(reason)") }
            if let error = l.error { print("       error: \(error)") }
        }
    }
}
