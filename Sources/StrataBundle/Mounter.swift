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
    /// More `strata mount` options, passed on as given (a docker:// image's registry options).
    public var extraArguments: [String] = []

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
        args += extraArguments
        if let upper {
            args += ["--upper", upper]
            if let work { args += ["--work", work] }
        }
        return args + ["--", image, rootfs]
    }

    public func mount(image: String, at rootfs: String, upper: String?, work: String?) throws(BundleError) {
        let (status, errors) = try ProgramRun.run(executable, mountArguments(image: image, rootfs: rootfs, upper: upper, work: work))
        guard status == 0 else {
            throw BundleError("mounting \(image) at \(rootfs) failed: \(ProgramRun.message(errors, status: status))")
        }
        guard isMounted(rootfs) else {
            throw BundleError("strata mount \(image) \(rootfs) succeeded but nothing is mounted there")
        }
    }

    public func unmount(_ rootfs: String) throws(BundleError) {
        let (status, errors) = try ProgramRun.run(executable, ["unmount", rootfs])
        guard status == 0 else {
            throw BundleError("unmounting \(rootfs) failed: \(ProgramRun.message(errors, status: status))")
        }
    }

    public func isMounted(_ rootfs: String) -> Bool { MountTable.isMountPoint(rootfs) }
}

/// A child with stdin on /dev/null and stderr (and stdout, when asked for) in unlinked
/// temporary files: a pipe would never see EOF, since `strata mount` leaves its daemon behind
/// holding it.
enum ProgramRun {
    static func run(_ executable: String, _ args: [String]) throws(BundleError) -> (Int32, String) {
        let (status, errors, _) = try run(executable, args, output: false)
        return (status, errors)
    }

    /// Status, stderr and (when `output`) stdout, each up to 1 MiB.
    static func run(_ executable: String, _ args: [String], output: Bool) throws(BundleError) -> (Int32, String, String) {
        let errFD = try temporaryFile()
        defer { errFD.close() }
        let outFD = output ? try temporaryFile() : nil
        defer { outFD?.close() }
        let options = SpawnOptions(stdin: .null, stdout: outFD.map { .descriptor($0) } ?? .null, stderr: .descriptor(errFD))
        let status: ExitStatus
        do {
            status = try ChildProcess.spawn(executable, args, options: options).wait()
        } catch where error.operation == "posix_spawn" {
            throw BundleError("cannot run \(executable)", cause: error)
        } catch {
            throw BundleError(error)
        }
        return (status.code, contents(errFD), outFD.map(contents) ?? "")
    }

    private static func temporaryFile() throws(BundleError) -> FileDescriptor {
        do { return try FileIO.makeAnonymousFile(in: "/tmp", prefix: "strata-bundle-child-") } catch {
            throw BundleError(error)
        }
    }

    private static func contents(_ fd: FileDescriptor) -> String {
        var output = [UInt8](repeating: 0, count: 1 << 20)
        let n = (try? output.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in try fd.readFully(into: b, at: 0) }) ?? 0
        return String(decoding: output[0..<n], as: UTF8.self)
    }

    /// The child's own "strata: ..." line without the prefix, on one line.
    static func message(_ stderr: String, status: Int32) -> String {
        let lines = stderr.split(whereSeparator: \.isNewline).map { line -> Substring in
            line.hasPrefix("strata: ") ? line.dropFirst("strata: ".count) : line
        }
        return lines.isEmpty ? "exit status \(status)" : lines.joined(separator: " ")
    }
}
