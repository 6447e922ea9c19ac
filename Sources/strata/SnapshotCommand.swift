#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StrataBundle
import StrataCodec
import StrataFuse
import StrataIndex
import StrataOCI
import StrataRemote
import StrataSnapshot
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

enum SnapshotCommand {
    static let help = """
    usage: strata snapshot [--root DIR] SUBCOMMAND ...

    A containerd-style snapshot store on Strata's lazy layers. Committed snapshots are layers in
    ROOT/layout (an OCI image layout: each has a chain image tagged snap-<id>, mountable with
    `strata mount ROOT/layout:snap-<id>`), indexed once into ROOT/cache and shared by every
    snapshot built on them. Active snapshots keep their writes in ROOT/snapshots/<id>/upper.
    Every change is serialised by a lock on ROOT and recorded in ROOT/metadata.json by
    write-then-rename; the state is checked first, and a command that would build on an
    inconsistent state refuses, naming the snapshot at fault.

      prepare [--label K=V]... KEY [PARENT]   an active, writable snapshot on the committed PARENT
                                             (or on nothing)
      view [--label K=V]... KEY PARENT        a read-only snapshot of the committed PARENT
      commit [--compression C] [--message TEXT] [--label K=V]... NAME KEY
                                             the active KEY's changes become the committed NAME
                                             (same parent); KEY is gone. KEY is unmounted first:
                                             stop its containers before. Prints the layer digest.
      remove KEY                             refused while KEY has children; unmounts KEY first
                                             (refused, removing nothing, while its mount is in
                                             use: EBUSY naming the PIDs)
      stat [--json] KEY                      kind, parent, layer, mount state
      list [--json]                          every snapshot, by key
      usage [--json] KEY                     bytes and inodes of KEY's own data: an active
                                             snapshot's upper (allocated bytes), a committed
                                             snapshot's layer blob and its entry count
      mounts [--json] KEY                    mounts KEY if needed (at ROOT/snapshots/<id>/rootfs,
                                             visible to other users) and prints the mountpoint to
                                             use as a container's rootfs; --json prints a
                                             containerd-style mount list (a bind of it)
      unmount KEY                            unmounts KEY's rootfs (KEY stays); refused while
                                             the mount is in use (never detached lazily)
      import [--platform P] IMAGE NAME       IMAGE's layers become committed snapshots without
                                             being extracted: layer i below the top is keyed by
                                             its chain ID (sha256:..., shared with other images
                                             on the same layers), the top is NAME. Prints the keys.
                                             Every layer's digest and diff_id are verified first.
                                             A docker:// IMAGE (with --tls-verify=false,
                                             --authfile FILE, --creds USER[:PASS] as for strata
                                             mount) is fetched whole: the store keeps its blobs.
      check                                  reports every inconsistency and leftover, reading
                                             every committed layer blob in full against its
                                             digest and diff_id; exit 1 if the state is
                                             inconsistent or a layer fails

      --root DIR         the store (default /var/lib/strata)
      --compression C    layer compression for commit: gzip (default), zstd or none
    """

    static let defaultRoot = "/var/lib/strata"

    static let spec = Arguments.Spec(valued: Set(["--root", "--compression", "--message", "--platform"]).union(RegistryFlags.valued),
                                     flags: ["--json"])

    /// Which options each subcommand takes, and how many positionals (min...max).
    static let subcommands: [String: (options: Set<String>, positionals: ClosedRange<Int>, usage: String)] = [
        "prepare": (["--label"], 1...2, "KEY [PARENT]"),
        "view": (["--label"], 2...2, "KEY PARENT"),
        "commit": (["--compression", "--message", "--label"], 2...2, "NAME KEY"),
        "remove": ([], 1...1, "KEY"),
        "stat": (["--json"], 1...1, "KEY"),
        "list": (["--json"], 0...0, ""),
        "usage": (["--json"], 1...1, "KEY"),
        "mounts": (["--json"], 1...1, "KEY"),
        "unmount": ([], 1...1, "KEY"),
        "import": (Set(["--platform"]).union(RegistryFlags.valued), 2...2, "IMAGE NAME"),
        "check": ([], 0...0, ""),
    ]

    static func run(_ args: ArraySlice<String>) throws -> Int32 {
        let (labels, remaining) = try extractLabels(args)
        let a = try Arguments(RegistryFlags.normalize(remaining), spec: spec)
        guard let sub = a.positionals.first else { throw CLIError("snapshot needs a subcommand (see strata snapshot --help)") }
        guard let shape = subcommands[sub] else { throw CLIError("unknown snapshot subcommand '\(sub)' (see strata snapshot --help)") }
        for option in a.options.keys.sorted() where option != "--root" && !shape.options.contains(option) {
            throw CLIError("option \(option) does not go with snapshot \(sub)")
        }
        if a.has("--json") && !shape.options.contains("--json") { throw CLIError("option --json does not go with snapshot \(sub)") }
        if !labels.isEmpty && !shape.options.contains("--label") { throw CLIError("option --label does not go with snapshot \(sub)") }
        let p = Array(a.positionals.dropFirst())
        guard shape.positionals.contains(p.count) else {
            throw CLIError("snapshot \(sub) needs \(shape.usage.isEmpty ? "no arguments" : shape.usage) (see strata snapshot --help)")
        }
        let store = SnapshotStore(root: FileIO.absolute(a["--root"] ?? defaultRoot), mounter: ProcessSnapshotMounter())
        store.warn = { writeStandardError("strata: warning: \($0)\n") }
        let json = a.has("--json")

        switch sub {
        case "prepare": try store.prepare(p[0], parent: p.count > 1 ? p[1] : nil, labels: labels)
        case "view": try store.view(p[0], parent: p[1], labels: labels)
        case "commit":
            var options = SnapshotStore.CommitOptions()
            let name = a["--compression"] ?? "gzip"
            guard let compression = LayerCompression(rawValue: name) else {
                throw CLIError("unknown compression \"\(name)\" (gzip, zstd or none)")
            }
            options.compression = compression
            options.message = a["--message"]
            options.labels = labels
            let record = try store.commit(p[0], key: p[1], options: options)
            print(record.layer?.digest.description ?? "")
        case "remove": try store.remove(p[0])
        case "stat": try printStat(store, key: p[0], json: json)
        case "list":
            let all = try store.list()
            if json {
                try printJSON(all.map { SnapshotJSON(key: $0.key, record: $0.record, store: store) })
            } else {
                print("KEY\tKIND\tPARENT")
                for (key, record) in all { print("\(key)\t\(record.kind.rawValue)\t\(record.parent ?? "")") }
            }
        case "usage":
            let usage = try store.usage(p[0])
            if json { try printJSON(usage) } else { print("size    \(usage.size)\ninodes  \(usage.inodes)") }
        case "mounts":
            let mount = try store.mounts(p[0])
            if json {
                try printJSON([MountJSON(type: "bind", source: mount.mountpoint, target: "",
                                         options: ["rbind", mount.readOnly ? "ro" : "rw"])])
            } else {
                print(mount.mountpoint)
            }
        case "unmount": try store.unmount(p[0])
        case "import":
            let platform = try a["--platform"].map { try Platform(parsing: $0) }
            if ImageOpening.isRemote(p[0]) {
                for key in try importRemote(p[0], as: p[1], store: store, platform: a["--platform"], registry: try RegistryFlags(a)) {
                    print(key)
                }
            } else {
                for key in try store.importImage(ImageOpening.absoluteReference(p[0]), as: p[1], platform: platform) { print(key) }
            }
        case "check":
            let report = try store.check()
            for problem in report.problems { print("inconsistent: \(problem)") }
            for leftover in report.leftovers { print("leftover: \(leftover) (strata gc removes it)") }
            if report.isConsistent && report.leftovers.isEmpty { print("ok") }
            return report.isConsistent ? 0 : 1
        default: break
        }
        return 0
    }

    /// `--label K=V` may repeat, which the shared parser does not keep: taken out first.
    static func extractLabels(_ args: ArraySlice<String>) throws -> ([String: String], ArraySlice<String>) {
        var labels: [String: String] = [:]
        var rest: [String] = []
        var i = args.startIndex
        func add(_ pair: String) throws {
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { throw CLIError("label \"\(pair)\" is not KEY=VALUE") }
            labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
        }
        while i < args.endIndex {
            let arg = args[i]
            i += 1
            if arg == "--" { rest += args[(i - 1)...]; break }
            if arg == "--label" {
                guard i < args.endIndex else { throw CLIError("option --label needs a value") }
                try add(args[i])
                i += 1
            } else if arg.hasPrefix("--label=") {
                try add(String(arg.dropFirst("--label=".count)))
            } else {
                rest.append(arg)
            }
        }
        return (labels, rest[...])
    }

    static func printStat(_ store: SnapshotStore, key: String, json: Bool) throws {
        let info = SnapshotJSON(key: key, record: try store.stat(key), store: store)
        if json { try printJSON(info); return }
        var lines = [("key", info.key), ("kind", info.kind), ("id", "\(info.id)"), ("parent", info.parent ?? "-"),
                     ("created", info.created)]
        if let labels = info.labels { lines.append(("labels", labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))) }
        if let layer = info.layer { lines.append(("layer", "\(layer.digest) (\(layer.mediaType), \(layer.size) bytes)")) }
        if let diffID = info.diffID { lines.append(("diff-id", diffID)) }
        if let image = info.image { lines.append(("image", image)) }
        if let upper = info.upper { lines.append(("upper", upper)) }
        if let mountpoint = info.mountpoint { lines.append(("rootfs", mountpoint + (info.mounted == true ? " (mounted)" : " (not mounted)"))) }
        for (name, value) in lines { print(name + String(repeating: " ", count: max(1, 9 - name.count)) + value) }
    }

    static func printJSON<T: Encodable>(_ value: T) throws {
        print(String(decoding: try JSONCoding.encode(value), as: UTF8.self))
    }
}

/// `stat --json` and `list --json`: the record plus where things are.
struct SnapshotJSON: Encodable {
    var key: String
    var kind: String
    var id: UInt64
    var parent: String?
    var created: String
    var labels: [String: String]?
    var layer: Descriptor?
    var diffID: String?
    /// A reference `strata mount` takes (committed snapshots).
    var image: String?
    var upper: String?
    var mountpoint: String?
    var mounted: Bool?

    init(key: String, record: SnapshotRecord, store: SnapshotStore) {
        self.key = key
        kind = record.kind.rawValue
        id = record.id
        parent = record.parent
        created = record.created
        labels = record.labels
        layer = record.layer
        diffID = record.diffID?.description
        if record.kind == .committed {
            image = "\(store.paths.layout):\(record.tag)"
        } else {
            mountpoint = store.paths.rootfs(id: record.id)
            mounted = FuseMount.isMounted(mountpoint!)
            if record.kind == .active { upper = store.paths.upper(id: record.id) }
        }
    }
}

struct MountJSON: Encodable {
    var type: String
    var source: String
    var target: String
    var options: [String]
}

/// The store's mounts are `strata mount` processes of our own executable, as bundles' are.
struct ProcessSnapshotMounter: SnapshotMounter {
    func mount(image: String, at mountpoint: String, upper: String?, work: String?, cache: String) throws {
        try StrataProcessMounter(cache: cache, suid: StrataProcessMounter.suidForContainers)
            .mount(image: image, at: mountpoint, upper: upper, work: work)
    }

    func unmount(_ mountpoint: String) throws {
        try StrataProcessMounter().unmount(mountpoint)
    }

    func isMounted(_ mountpoint: String) -> Bool { FuseMount.isMounted(mountpoint) }
}

extension SnapshotCommand {
    /// A docker:// image: copied whole into a temporary layout beside the store (its blobs
    /// completed in the store's cache), imported from there, the layout removed.
    static func importRemote(_ reference: String, as name: String, store: SnapshotStore, platform: String?,
                             registry: RegistryFlags) throws -> [String] {
        let source = try ImageOpening.open(reference, platform: platform, registry: registry, cache: store.paths.cache)
        guard let remote = source.remote else { return [] }
        try FileIO.makeDirectories(store.paths.root)
        let cache = try LayerCache(directory: store.paths.cache)
        let layout = store.paths.root + "/import-\(getpid())"
        defer { try? FileTree.remove(layout) }
        let local = try RemoteImageCopy.copy(source.image, client: remote.client, cache: cache, to: layout, tag: "import")
        return try store.importImage(local, as: name, platform: nil)
    }
}
