import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

let usage = """
usage: strata COMMAND [OPTIONS] ...

Strata mounts OCI container images as a union root filesystem without extracting their layers.

commands:
  mount     mount an image read-only (lazily, from indexed layers)
  unmount   unmount a strata mount (also a stale one)
  index     index and verify every layer of an image
  inspect   show an image's manifest, config and layers
  bundle    make an OCI runtime bundle (config.json + mounted rootfs); --remove undoes it
  commit    write an overlayfs upper directory as a new layer and image
  snapshot  containerd-style snapshots (prepare, view, commit, remove, mounts...) in a store
  gc        remove what no snapshot or tag uses from a snapshot store; limit its cache size

Run `strata COMMAND --help` for a command's options.
"""

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    writeStandardError(usage + "\n")
    exit(2)
}
let command = arguments[1]
let rest = arguments[2...]
let helps: [String: String] = [
    "mount": MountCommand.help, "unmount": UnmountCommand.help,
    "index": IndexCommand.help, "inspect": InspectCommand.help,
    "bundle": BundleCommand.help, "commit": CommitCommand.help,
    "snapshot": SnapshotCommand.help, "gc": GcCommand.help,
]
if command == "--help" || command == "-h" || command == "help" {
    print(usage)
    exit(0)
}
guard let help = helps[command] else {
    writeStandardError("strata: unknown command '\(command)'\n\(usage)\n")
    exit(2)
}
if rest.contains("--help") || rest.contains("-h") {
    print(help)
    exit(0)
}
do {
    switch command {
    case "mount": exit(try MountCommand.run(rest))
    case "unmount": try UnmountCommand.run(rest)
    case "index": try IndexCommand.run(rest)
    case "inspect": try InspectCommand.run(rest)
    case "bundle": try BundleCommand.run(rest)
    case "commit": try CommitCommand.run(rest)
    case "snapshot": exit(try SnapshotCommand.run(rest))
    case "gc": try GcCommand.run(rest)
    default: break
    }
} catch {
    // One line, naming what is at fault; the message itself carries the file, digest or entry.
    let line = "\(error)".split(separator: "\n").joined(separator: " ")
    writeStandardError("strata: \(line)\n")
    exit(1)
}
