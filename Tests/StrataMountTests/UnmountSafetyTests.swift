#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataTestSupport
import Testing

/// `strata unmount` unmounts strata mounts only, and never detaches one still in use: a
/// process holding a file or a working directory in it gets the mount refused with EBUSY and
/// its PID, and the mount stays. A stale mount (dead daemon) is still cleared, used or not.
@Suite(.mountTimeLimit, .enabled(if: SafetyTestSupport.available, "needs root, /dev/fuse and the strata binary"), .serialized)
struct UnmountSafetyTests {
    @Test(arguments: ["tmpfs", "proc"])
    func anotherFileSystemIsNotUnmounted(_ type: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let directory = temp.child(type)
        try SafetyTestSupport.mountForeign(type, at: directory)
        defer { SafetyTestSupport.unmountForeign(directory) }
        let r = try StrataBinary.run(["unmount", directory])
        #expect(r.status == 1)
        #expect(r.stderr.contains("not a strata mount (\(type) is mounted there)"), "\(r.stderr)")
        #expect(Mounts.isMounted(directory))
    }

    @Test func anOpenFileKeepsTheMount() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: try SafetyTestSupport.smallImage(temp), mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache")])
        defer { try? mount.unmount() }
        let fd = open(mnt + "/etc/hello", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        var closed = false
        defer { if !closed { close(fd) } }

        let refused = try StrataBinary.run(["unmount", mnt])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("EBUSY: in use by PIDs"), "\(refused.stderr)")
        #expect(Self.pids(in: refused.stderr).contains(getpid()), "\(refused.stderr)")
        #expect(Mounts.isMounted(mnt))
        var byte: UInt8 = 0
        #expect(read(fd, &byte, 1) == 1 && byte == UInt8(ascii: "h"), "the file still reads after the refusal")

        close(fd)
        closed = true
        let done = try StrataBinary.run(["unmount", mnt])
        #expect(done.status == 0, "\(done.stderr)")
        #expect(!Mounts.isMounted(mnt))
    }

    @Test func aWorkingDirectoryKeepsTheMount() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: try SafetyTestSupport.smallImage(temp), mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache")])
        defer { try? mount.unmount() }
        let sleeper = try BackgroundProcess("cd '\(mnt)/data' && exec sleep 600")
        defer { sleeper.stop() }
        try #require(Mounts.waitUntil(seconds: 30) { Self.workingDirectory(of: sleeper.pid) == mnt + "/data" })

        let refused = try StrataBinary.run(["unmount", mnt])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("EBUSY"), "\(refused.stderr)")
        #expect(Self.pids(in: refused.stderr) == [sleeper.pid], "\(refused.stderr)")
        #expect(Mounts.isMounted(mnt))

        sleeper.stop()
        let done = try StrataBinary.run(["unmount", mnt])
        #expect(done.status == 0, "\(done.stderr)")
        #expect(!Mounts.isMounted(mnt))
    }

    /// A dead daemon's mount serves nobody: it is cleared even with a file open in it.
    @Test func aStaleMountInUseIsStillCleared() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: try SafetyTestSupport.smallImage(temp), mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache")])
        defer { try? mount.unmount() }
        let fd = open(mnt + "/etc/hello", O_RDONLY | O_CLOEXEC)
        try #require(fd >= 0)
        defer { close(fd) }
        let daemon = try #require(Self.daemonPID(for: mnt))
        kill(-daemon, SIGKILL)   // the supervisor's group: it and its server
        try #require(Mounts.waitUntil(seconds: 30) { kill(daemon, 0) != 0 })

        let r = try StrataBinary.run(["unmount", mnt])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!Mounts.isMounted(mnt))
    }

    /// The numbers after "PIDs " in a refusal.
    static func pids(in message: String) -> [Int32] {
        guard let range = message.range(of: "PIDs ") else { return [] }
        return message[range.upperBound...].prefix { $0.isNumber || $0 == "," || $0 == " " }
            .split(separator: ",").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    static func workingDirectory(of pid: pid_t) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/\(pid)/cwd", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func daemonPID(for mountpoint: String) -> pid_t? {
        let r = try? Command.run(Mounts.tool("pgrep"), ["-f", "strata mount --foreground.* \(mountpoint)( |$)"])
        return r.flatMap { Int32($0.stdoutString.split(separator: "\n").first ?? "") }
    }
}
