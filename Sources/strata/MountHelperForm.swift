import StrataSystem

/// `strata IMAGE MOUNTPOINT -o OPTIONS`: how mount.fuse3 runs a `fuse.strata` file system for
/// `mount -t fuse.strata` and /etc/fstab (it execs `/bin/sh -c "strata 'IMAGE' 'MNT' -o OPTS"`,
/// with mount(8)'s environment minus PATH, so strata must be in /usr/local/bin, /usr/bin or
/// /bin — or a /sbin/mount.fuse.strata helper runs it). The options become `strata mount`'s.
enum MountHelperForm {
    /// `strata mount` arguments for the helper form, or nil when `arguments` (without the
    /// program name) is not that form. Throws a usage error for an option strata does not know.
    static func arguments(_ arguments: [String]) throws -> [String]? {
        var positionals: [String] = []
        var options: [String] = []
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "-o" {
                guard i < arguments.count else { throw CLIError("option -o needs a value", usage: true) }
                options += arguments[i].split(separator: ",").map(String.init)
                i += 1
            } else if arg.hasPrefix("-o") && arg.count > 2 {
                options += arg.dropFirst(2).split(separator: ",").map(String.init)
            } else if arg.hasPrefix("-") {
                return nil
            } else {
                positionals.append(arg)
            }
        }
        guard positionals.count == 2 else { return nil }
        // Without -o, take it only when the second argument is a directory, so that a
        // mistyped command is still "unknown command".
        if options.isEmpty && !FileIO.isDirectory(positionals[1]) { return nil }
        return try mountArguments(options: options) + ["--", positionals[0], positionals[1]]
    }

    /// Options mount(8) and mount.fuse3 pass that mean nothing to strata: fstab bookkeeping
    /// (noauto, user, _netdev, nofail, x-*), and flags strata fixes itself (a strata mount is
    /// always nodev; exec and atime are the kernel's defaults).
    static let ignored: Set<String> = [
        "defaults", "auto", "noauto", "user", "users", "nouser", "owner", "group", "_netdev", "nofail",
        "dev", "nodev", "exec", "noexec", "nosuid", "async", "sync", "atime", "noatime", "relatime",
        "norelatime", "strictatime", "nostrictatime", "lazytime", "nolazytime", "diratime", "nodiratime",
        "loud", "silent", "nomand", "iversion", "noiversion",
    ]

    static func mountArguments(options: [String]) throws -> [String] {
        var args: [String] = []
        var readWrite = false
        var readOnly = false
        var upper = false
        for option in options {
            let parts = option.split(separator: "=", maxSplits: 1).map(String.init)
            let name = parts[0]
            let value = parts.count == 2 ? parts[1] : nil
            let valued = ["cache": "--cache", "upper": "--upper", "work": "--work", "platform": "--platform",
                          "log": "--log", "log-level": "--log-level", "stats": "--stats"]
            if let flag = valued[name] {
                guard let value, !value.isEmpty else { throw CLIError("option \(name)= needs a value", usage: true) }
                args += [flag, value]
                if name == "upper" { upper = true }
                continue
            }
            guard value == nil || name == "comment" || name.hasPrefix("x-") else {
                throw CLIError("option \(name) takes no value", usage: true)
            }
            switch name {
            case "ro": readOnly = true
            case "rw": readWrite = true
            case "allow_other": args.append("--allow-other")
            case "suid": args.append("--suid")
            case _ where ignored.contains(name) || name.hasPrefix("x-") || name == "comment": continue
            default:
                throw CLIError("unknown mount option \(name) (strata takes ro, rw, allow_other, suid, cache=, upper=, work=, platform=, log=, log-level=, stats=)", usage: true)
            }
        }
        if readWrite && !upper { throw CLIError("option rw needs upper=DIR (the writes go there)", usage: true) }
        if readOnly && upper { throw CLIError("options ro and upper= exclude each other", usage: true) }
        return args
    }
}
