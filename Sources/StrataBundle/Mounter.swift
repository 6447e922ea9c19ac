#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// How a bundle gets its root filesystem mounted and unmounted. The CLI runs its own
/// `strata mount`/`strata unmount`; tests of the bundle logic put a fake in.
public protocol Mounter {
    /// Mounts `image` at `rootfs`, writable through `upper` (with `work` for copy-ups, or
    /// the mount's default beside `upper`) when given, and returns once the mount answers;
    /// throws with nothing mounted otherwise.
    func mount(image: String, at rootfs: String, upper: String?, work: String?) throws(BundleError)
    func unmount(_ rootfs: String) throws(BundleError)
    func isMounted(_ rootfs: String) -> Bool
}

/// Runs the `strata` executable (normally our own, /proc/self/exe): `strata mount` already
/// daemonizes, waits for the mount to answer and cleans up after a failure, so a bundle
/// need not know how FUSE is driven.
public struct StrataProcessMounter: Mounter {
    public var executable: String
    public var cache: String?
    public var platform: String?
    /// Passed on as `strata mount --stats`: what serving the rootfs cost, written at unmount.
    public var stats: String?
    /// Passed on as `strata mount --suid` (root only): setuid programs in the image work.
    public var suid: Bool

    public init(executable: String = "/proc/self/exe", cache: String? = nil, platform: String? = nil, stats: String? = nil,
                suid: Bool = false) {
        self.executable = executable
        self.cache = cache
        self.platform = platform
        self.stats = stats
        self.suid = suid
    }

    /// Container roots are mounted suid when root mounts them, as kernel overlayfs gives them.
    public static var suidForContainers: Bool { geteuid() == 0 }

    /// The arguments of `strata mount`. The mount must be seen by the container's user,
    /// which is not the mounting root once the runtime switched to `process.user`.
    public func mountArguments(image: String, rootfs: String, upper: String?, work: String?) -> [String] {
        var args = ["mount", "--allow-other"]
        if suid { args.append("--suid") }
        if let cache { args += ["--cache", cache] }
        if let platform { args += ["--platform", platform] }
        if let stats { args += ["--stats", stats] }
        if let upper {
            args += ["--upper", upper]
            if let work { args += ["--work", work] }
        }
        return args + ["--", image, rootfs]
    }

    public func mount(image: String, at rootfs: String, upper: String?, work: String?) throws(BundleError) {
        let (status, errors) = try ChildProcess.run(executable, mountArguments(image: image, rootfs: rootfs, upper: upper, work: work))
        guard status == 0 else {
            throw BundleError("mounting \(image) at \(rootfs) failed: \(ChildProcess.message(errors, status: status))")
        }
        guard isMounted(rootfs) else {
            throw BundleError("strata mount \(image) \(rootfs) succeeded but nothing is mounted there")
        }
    }

    public func unmount(_ rootfs: String) throws(BundleError) {
        let (status, errors) = try ChildProcess.run(executable, ["unmount", rootfs])
        guard status == 0 else {
            throw BundleError("unmounting \(rootfs) failed: \(ChildProcess.message(errors, status: status))")
        }
    }

    public func isMounted(_ rootfs: String) -> Bool { MountInfo.isMountPoint(rootfs) }
}

/// A child with stdin on /dev/null and stderr (and stdout, when asked for) in unlinked
/// temporary files: a pipe would never see EOF, since `strata mount` leaves its daemon behind
/// holding it.
enum ChildProcess {
    static func run(_ executable: String, _ args: [String]) throws(BundleError) -> (Int32, String) {
        let (status, errors, _) = try run(executable, args, output: false)
        return (status, errors)
    }

    /// Status, stderr and (when `output`) stdout, each up to 1 MiB.
    static func run(_ executable: String, _ args: [String], output: Bool) throws(BundleError) -> (Int32, String, String) {
        let errFD = try temporaryFile()
        defer { close(errFD) }
        let outFD = output ? try temporaryFile() : -1
        defer { if outFD >= 0 { close(outFD) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if outFD >= 0 {
            posix_spawn_file_actions_adddup2(&actions, outFD, 1)
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, errFD, 2)

        let argv = ([executable] + args).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = (argv + [nil]).withUnsafeBufferPointer { buffer in
            posix_spawn(&pid, executable, &actions, nil, UnsafeMutablePointer(mutating: buffer.baseAddress!), environ)
        }
        guard spawned == 0 else {
            throw BundleError("cannot run \(executable): \(SystemError(code: spawned, operation: "posix_spawn", path: executable))")
        }
        var waitStatus: Int32 = 0
        while waitpid(pid, &waitStatus, 0) < 0 {
            guard errno == EINTR else { throw BundleError("\(SystemError(code: errno, operation: "waitpid"))") }
        }
        let status = waitStatus & 0x7f == 0 ? (waitStatus >> 8) & 0xff : 128 + (waitStatus & 0x7f)
        return (status, contents(errFD), outFD >= 0 ? contents(outFD) : "")
    }

    private static func temporaryFile() throws(BundleError) -> Int32 {
        var template = Array("/tmp/strata-bundle-child-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw BundleError("\(SystemError(code: errno, operation: "mkstemp", path: "/tmp"))") }
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return fd
    }

    private static func contents(_ fd: Int32) -> String {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var offset: off_t = 0
        while output.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n <= 0 { break }
            output.append(contentsOf: chunk[0..<n])
            offset += off_t(n)
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// The child's own "strata: ..." line without the prefix, on one line.
    static func message(_ stderr: String, status: Int32) -> String {
        let lines = stderr.split(whereSeparator: \.isNewline).map { line -> Substring in
            line.hasPrefix("strata: ") ? line.dropFirst("strata: ".count) : line
        }
        return lines.isEmpty ? "exit status \(status)" : lines.joined(separator: " ")
    }
}
