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
        guard let bytes = try? FileIO.readAll("/proc/self/mountinfo") else { return nil }
        var found: [String]?
        for line in bytes.split(separator: 0x0a) {
            let fields = line.split(separator: 0x20).map { String(decoding: $0, as: UTF8.self) }
            if fields.count > 5, fields[4] == mountpoint { found = fields[5].split(separator: ",").map(String.init) }
        }
        return found
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
    let pid: pid_t
    private var stopped = false

    init(_ script: String) throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        let words: [String] = ["/bin/sh", "-c", script]
        let argv = words.map { strdup($0) }
        defer { argv.forEach { free($0) } }
        var child: pid_t = 0
        let status = (argv + [nil]).withUnsafeBufferPointer { buffer in
            posix_spawn(&child, "/bin/sh", &actions, nil, UnsafeMutablePointer(mutating: buffer.baseAddress!), environ)
        }
        guard status == 0 else { throw SystemError(code: status, operation: "posix_spawn", path: "/bin/sh") }
        pid = child
    }

    func stop() {
        guard !stopped else { return }
        stopped = true
        kill(pid, SIGKILL)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }

    deinit { stop() }
}
