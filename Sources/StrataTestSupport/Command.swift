#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// What a finished program left behind.
public struct CommandResult: Sendable {
    /// The exit code, or 128 + signal number when the program was killed.
    public var status: Int32
    public var stdout: [UInt8]
    public var stderr: String
    /// True when the timeout expired and the program was killed.
    public var timedOut: Bool

    public var succeeded: Bool { status == 0 && !timedOut }
    public var stdoutString: String { String(decoding: stdout, as: UTF8.self) }
}

public struct CommandError: Error, CustomStringConvertible {
    public var command: [String]
    public var result: CommandResult

    public var description: String {
        let what = result.timedOut ? "timed out" : "exited with status \(result.status)"
        return "\(command.joined(separator: " ")) \(what)\n--- stdout ---\n\(result.stdoutString)\n--- stderr ---\n\(result.stderr)"
    }
}

public enum Command {
    /// Runs `path` (a name without "/" is looked up in PATH) with stdin on /dev/null.
    /// `environment` nil inherits ours. On timeout only this child, by its PID, is killed.
    ///
    /// Output is read until the child exits, then whatever is already buffered is drained;
    /// EOF is not waited for, because `strata mount` leaves a daemon holding the pipes.
    public static func run(_ path: String, _ args: [String], environment: [String: String]? = nil,
                           timeout: Double = 120) throws -> CommandResult {
        let outPipe = try makePipe()
        let errPipe = try makePipe()
        defer { for fd in [outPipe.read, errPipe.read] { close(fd) } }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe.write, 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe.write, 2)

        // The test runner may block or ignore signals; the child starts clean.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([path] + args).map { strdup($0) }
        defer { argv.forEach { free($0) } }
        let envStrings = environment.map { $0.map { "\($0.key)=\($0.value)" }.sorted() }
        let envp = envStrings?.map { strdup($0) }
        defer { envp?.forEach { free($0) } }

        var pid: pid_t = 0
        let spawnResult: Int32 = (argv + [nil]).withUnsafeBufferPointer { argvBuffer in
            let argvPointer = UnsafeMutablePointer(mutating: argvBuffer.baseAddress!)
            func spawn(_ env: UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
                path.contains("/")
                    ? posix_spawn(&pid, path, &actions, &attributes, argvPointer, env)
                    : posix_spawnp(&pid, path, &actions, &attributes, argvPointer, env)
            }
            if let envp {
                return (envp + [nil]).withUnsafeBufferPointer { spawn($0.baseAddress!) }
            }
            return spawn(environ)
        }
        // Our copies of the write ends must go, or reads would never see EOF.
        close(outPipe.write)
        close(errPipe.write)
        if spawnResult != 0 { throw SystemError(code: spawnResult, operation: "posix_spawn", path: path) }

        var out: [UInt8] = []
        var err: [UInt8] = []
        var open: [Int32: Bool] = [outPipe.read: true, errPipe.read: true]
        let deadline = monotonicSeconds() + timeout
        var timedOut = false
        var waitStatus: Int32 = 0
        var exited = false

        while !exited {
            var fds = open.filter { $0.value }.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            // A short poll interval so an exit is noticed even while a daemon keeps the pipes open.
            _ = poll(&fds, nfds_t(fds.count), 50)
            for fd in fds where fd.revents != 0 {
                let more = fd.fd == outPipe.read ? drain(fd.fd, into: &out) : drain(fd.fd, into: &err)
                if !more { open[fd.fd] = false }
            }
            let w = waitpid(pid, &waitStatus, WNOHANG)
            if w == pid { exited = true; break }
            if w < 0 && errno != EINTR { break }
            if !timedOut && monotonicSeconds() > deadline {
                timedOut = true
                kill(pid, SIGKILL)
            }
        }
        if !exited {
            while waitpid(pid, &waitStatus, 0) < 0 && errno == EINTR {}
        }
        _ = drain(outPipe.read, into: &out)
        _ = drain(errPipe.read, into: &err)

        let status: Int32
        if waitStatus & 0x7f == 0 {
            status = (waitStatus >> 8) & 0xff
        } else {
            status = 128 + (waitStatus & 0x7f)
        }
        return CommandResult(status: status, stdout: out, stderr: String(decoding: err, as: UTF8.self), timedOut: timedOut)
    }

    /// Like `run`, but a non-zero status or a timeout is thrown as `CommandError`.
    @discardableResult
    public static func check(_ path: String, _ args: [String], environment: [String: String]? = nil,
                             timeout: Double = 120) throws -> CommandResult {
        let result = try run(path, args, environment: environment, timeout: timeout)
        if !result.succeeded { throw CommandError(command: [path] + args, result: result) }
        return result
    }

    /// Non-blocking pipe whose ends close on exec, so concurrently spawned children
    /// (tests run in parallel) never inherit each other's pipes.
    private static func makePipe() throws -> (read: Int32, write: Int32) {
        let fds = try LinuxCalls.pipe2(flags: O_CLOEXEC)
        _ = fcntl(fds.read, F_SETFL, fcntl(fds.read, F_GETFL) | O_NONBLOCK)
        return fds
    }

    /// Reads what is available now; false at EOF or on a hard error.
    private static func drain(_ fd: Int32, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { buffer.append(contentsOf: chunk[0..<n]); continue }
            if n == 0 { return false }
            if errno == EINTR { continue }
            return errno == EAGAIN || errno == EWOULDBLOCK
        }
    }

    private static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
