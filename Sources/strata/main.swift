import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

let usage = """
usage: strata COMMAND [OPTIONS] ...
       strata IMAGE MOUNTPOINT -o OPTIONS
       strata --version

Strata mounts OCI container images as a union root filesystem without extracting their layers.

commands:
  mount     mount an image read-only (lazily, from indexed layers)
  unmount   unmount a strata mount (also a stale one)
  restart   hand a mount to a new server process (an upgrade), containers keep running
  index     index and verify every layer of an image
  inspect   show an image's manifest, config and layers
  bundle    make an OCI runtime bundle (config.json + mounted rootfs); --remove undoes it
  commit    write an overlayfs upper directory as a new layer and image
  convert   rewrite an image's layers as eStargz, zstd:chunked, gzip, zstd or plain tar
  snapshot  containerd-style snapshots (prepare, view, commit, remove, mounts...) in a store
  gc        remove what no snapshot or tag uses from a snapshot store; limit its cache size
  status    show what a mount has fetched and verified of its image (docker:// images)
  version   show versions: strata, its commit, file formats, libraries, kernel FUSE features

The second form is how mount(8) runs strata, through mount.fuse3, for
`mount -t fuse.strata IMAGE MOUNTPOINT -o OPTIONS` and an /etc/fstab line (see
`strata mount --help`).

Run `strata COMMAND --help` for a command's options.
"""

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    writeStandardError(usage + ExitCodes.help + "\n")
    exit(2)
}
let command = arguments[1]
let rest = arguments[2...]
let helps: [String: String] = [
    "mount": MountCommand.help, "unmount": UnmountCommand.help,
    "index": IndexCommand.help, "inspect": InspectCommand.help,
    "bundle": BundleCommand.help, "commit": CommitCommand.help, "convert": ConvertCommand.help,
    "snapshot": SnapshotCommand.help, "gc": GcCommand.help,
    "status": StatusCommand.help, "version": VersionCommand.help,
    "restart": RestartCommand.help,
]
/// Every help ends with the exit statuses (the version help lists them itself).
func fullHelp(_ name: String) -> String? {
    guard let help = helps[name] else { return nil }
    return name == "version" ? help : help + ExitCodes.help
}
if command == "--help" || command == "-h" || command == "help" {
    if rest.first == "--man" {
        // Hidden: the man pages scripts/install writes, made from the same text as --help.
        let name = rest.dropFirst().first
        if let name, let help = fullHelp(name) {
            print(ManPage.render(command: name, help: help))
        } else if name == nil {
            print(ManPage.render(command: nil, help: usage + ExitCodes.help))
        } else {
            writeStandardError("strata: unknown command '\(name ?? "")'\n")
            exit(2)
        }
        exit(0)
    }
    if let name = rest.first, let help = fullHelp(name) {
        print(help)
    } else {
        print(usage + ExitCodes.help)
    }
    exit(0)
}
if command == "--version" || command == "-V" {
    print(VersionCommand.report())
    exit(0)
}
var commandName = command
var commandArguments = rest
if helps[command] == nil {
    // mount.fuse3's form: `strata IMAGE MOUNTPOINT -o OPTIONS`.
    do {
        guard let translated = try MountHelperForm.arguments(Array(arguments.dropFirst())) else {
            writeStandardError("strata: unknown command '\(command)'\n\(usage)\(ExitCodes.help)\n")
            exit(2)
        }
        commandName = "mount"
        commandArguments = ArraySlice(translated)
    } catch {
        writeStandardError("strata: \(error)\n")
        exit(2)
    }
}
guard let help = fullHelp(commandName) else { exit(2) }
if commandArguments.contains("--help") || commandArguments.contains("-h") {
    print(help)
    exit(0)
}
do {
    switch commandName {
    case "mount": exit(try MountCommand.run(commandArguments))
    case "unmount": try UnmountCommand.run(commandArguments)
    case "index": try IndexCommand.run(commandArguments)
    case "inspect": try InspectCommand.run(commandArguments)
    case "bundle": try BundleCommand.run(commandArguments)
    case "commit": try CommitCommand.run(commandArguments)
    case "convert": try ConvertCommand.run(commandArguments)
    case "snapshot": exit(try SnapshotCommand.run(commandArguments))
    case "gc": try GcCommand.run(commandArguments)
    case "status": try StatusCommand.run(commandArguments)
    case "version": try VersionCommand.run(commandArguments)
    case "restart": try RestartCommand.run(commandArguments)
    default: break
    }
} catch {
    // One line, naming what is at fault; the message itself carries the file, digest or entry.
    let line = "\(error)".split(separator: "\n").joined(separator: " ")
    writeStandardError("strata: \(line)\n")
    exit(CLIError.isUsage(error) ? 2 : 1)
}
