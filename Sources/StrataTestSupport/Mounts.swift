#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Unmounting that does not depend on the code under test working.
public enum Mounts {
    public static func isMounted(_ path: String) -> Bool { MountTable.isMounted(path) }

    /// Tries, in order, until the kernel no longer lists the mount: `strata unmount`
    /// (the path users take), `fusermount3 -u` (works when strata's own logic is broken),
    /// `umount -l` (detaches even while busy or when the daemon is dead).
    public static func forceUnmount(_ mountPoint: String) throws {
        var attempts: [(String, [String])] = []
        if let strata = try? StrataBinary.path() { attempts.append((strata, ["unmount", mountPoint])) }
        attempts.append((tool("fusermount3"), ["-u", mountPoint]))
        attempts.append((tool("umount"), ["-l", mountPoint]))
        var log: [String] = []
        for (program, args) in attempts {
            guard isMounted(mountPoint) else { return }
            let result = try? Command.run(program, args, timeout: 30)
            if let result, result.succeeded {
                // Success may precede the kernel dropping the entry by a moment.
                if waitUntil(seconds: 2, { !isMounted(mountPoint) }) { return }
            } else {
                log.append("\(program) \(args.joined(separator: " ")): status \(result?.status ?? -1) \(result?.stderr ?? "could not run")")
            }
        }
        if isMounted(mountPoint) {
            throw HarnessError("could not unmount \(mountPoint):\n" + log.joined(separator: "\n"))
        }
    }

    /// Polls `condition` every 20 ms until it holds or the time runs out.
    public static func waitUntil(seconds: Double, _ condition: () -> Bool) -> Bool {
        let rounds = max(1, Int(seconds / 0.02))
        for _ in 0..<rounds {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// An absolute path where the usual one exists: the test environment's PATH may be bare.
    public static func tool(_ name: String) -> String {
        for dir in ["/usr/bin", "/bin", "/usr/sbin", "/sbin"] where access("\(dir)/\(name)", X_OK) == 0 {
            return "\(dir)/\(name)"
        }
        return name
    }
}
