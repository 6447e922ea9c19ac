#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataTestSupport

/// Helpers of the unmount, bundle-removal, setuid and commit-lock safety tests.
enum SafetyTestSupport {
    static var available: Bool {
        getuid() == 0 && StrataBinary.isBuilt && access("/dev/fuse", R_OK | W_OK) == 0
    }

    /// A one-layer image with a file and a directory, tagged "test" in temp/layout.
    static func smallImage(_ temp: TempDirectory) throws -> String {
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.dir("etc"), Items.file("etc/hello", "hello\n"), Items.dir("data")])
        try builder.write(tag: "test")
        return builder.reference("test")
    }

    /// The per-mount options of the mount on top at `mountpoint` (mountinfo field 6).
    static func mountOptions(_ mountpoint: String) -> [String]? {
        MountTable.top(at: mountpoint)?.options
    }

    /// `mount -t TYPE TYPE DIR`: a file system strata did not make, to be left alone.
    static func mountForeign(_ type: String, at directory: String) throws {
        try FileIO.makeDirectories(directory)
        try Command.check(Mounts.tool("mount"), ["-t", type, type, directory])
    }

    static func unmountForeign(_ directory: String) {
        if Mounts.isMounted(directory) { _ = try? Command.run(Mounts.tool("umount"), [directory]) }
    }
}

/// A process the test started (`sh -c SCRIPT`, stdio on /dev/null), killed and reaped by
/// `stop()` or deinit.
final class BackgroundProcess {
    private let child: ChildProcess
    var pid: pid_t { child.pid }
    private var stopped = false

    init(_ script: String) throws {
        child = try ChildProcess.spawn("/bin/sh", ["-c", script], options: SpawnOptions(stdin: .null, stdout: .null, stderr: .null))
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        child.kill()
        _ = try? child.wait()
    }

    deinit { stop() }
}
