#if canImport(Glibc)
import Glibc
#endif

/// How a child started by `ChildProcess.spawn` is set up.
public struct SpawnOptions: Sendable {
    /// Where one of the child's standard streams goes.
    public enum Stream: Sendable {
        /// Ours.
        case inherit
        /// /dev/null.
        case null
        /// A file opened in the child (flags as open(2)'s, created with mode 0o644).
        case file(String, flags: Int32)
        /// A descriptor of ours, duplicated into the child.
        case descriptor(FileDescriptor)
        /// A new pipe whose read end (non-blocking, close-on-exec) the `ChildProcess` holds;
        /// for stdout and stderr.
        case pipe
    }

    public var stdin: Stream
    public var stdout: Stream
    public var stderr: Stream
    /// "KEY=value" strings; nil inherits ours.
    public var environment: [String]?
    /// More descriptors of ours the child receives, at the given numbers.
    public var descriptors: [(ours: FileDescriptor, child: Int32)]
    /// A new session (setsid): no controlling terminal, the shell's SIGHUP and job control stay away.
    public var newSession: Bool
    /// When set, the child starts with no signal blocked and these at their default action,
    /// whatever the parent (a test runner, a shell) blocked or ignored.
    public var defaultSignals: [Int32]?
    /// A program name without "/" is looked up in PATH.
    public var searchPath: Bool

    public init(stdin: Stream = .inherit, stdout: Stream = .inherit, stderr: Stream = .inherit,
                environment: [String]? = nil, descriptors: [(ours: FileDescriptor, child: Int32)] = [],
                newSession: Bool = false, defaultSignals: [Int32]? = nil, searchPath: Bool = false) {
        self.stdin = stdin; self.stdout = stdout; self.stderr = stderr; self.environment = environment
        self.descriptors = descriptors; self.newSession = newSession; self.defaultSignals = defaultSignals
        self.searchPath = searchPath
    }

    /// Our environment with `extra` set over it (sorted by key, after ours).
    public static func environment(adding extra: [String: String]) -> [String] {
        var result: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let key = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if extra[key] == nil { result.append(text) }
            index += 1
        }
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { result.append("\(key)=\(value)") }
        return result
    }
}

/// How a child ended.
public struct ExitStatus: Sendable, Equatable {
    /// waitpid's status word.
    public let raw: Int32
    public init(raw: Int32) { self.raw = raw }
    /// The exit code, nil when a signal ended it (WIFEXITED / WEXITSTATUS are macros).
    public var exitCode: Int32? { raw & 0x7f == 0 ? (raw >> 8) & 0xff : nil }
    public var signal: Int32? { raw & 0x7f == 0 ? nil : raw & 0x7f }
    /// The shell's number: the exit code, or 128 + the signal.
    public var code: Int32 { exitCode ?? 128 + (raw & 0x7f) }
}

/// The one posix_spawn of the project: a child process, and what it left behind.
public struct ChildProcess: Sendable {
    public let pid: pid_t
    /// The read ends of `.pipe` streams (owned by the caller of `spawn`; `collect` closes them).
    public let stdout: FileDescriptor?
    public let stderr: FileDescriptor?

    /// Starts `executable` with `arguments`; `argument0` (default: `executable`) is its argv[0].
    public static func spawn(_ executable: String, _ arguments: [String], argument0: String? = nil,
                             options: SpawnOptions = SpawnOptions()) throws(SystemError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipes: [Int32: (read: Int32, write: Int32)] = [:]
        defer { for p in pipes.values { _ = Glibc.close(p.write) } }   // our copies: EOF comes when the child's close
        do throws(SystemError) {
            for (number, stream) in [(Int32(0), options.stdin), (1, options.stdout), (2, options.stderr)] {
                switch stream {
                case .inherit: break
                case .null: posix_spawn_file_actions_addopen(&actions, number, "/dev/null", number == 0 ? O_RDONLY : O_WRONLY, 0)
                case .file(let path, let flags): posix_spawn_file_actions_addopen(&actions, number, path, flags, 0o644)
                case .descriptor(let fd): posix_spawn_file_actions_adddup2(&actions, fd.rawValue, number)
                case .pipe:
                    // Close-on-exec, so children spawned concurrently never inherit each other's pipes.
                    let p = try LinuxCalls.pipe2(flags: O_CLOEXEC)
                    _ = fcntl(p.read, F_SETFL, fcntl(p.read, F_GETFL) | O_NONBLOCK)
                    pipes[number] = p
                    posix_spawn_file_actions_adddup2(&actions, p.write, number)
                }
            }
        } catch {
            for p in pipes.values { _ = Glibc.close(p.read) }
            throw error
        }
        // dup2 to another number clears close-on-exec: only that copy reaches the child.
        for (ours, child) in options.descriptors { posix_spawn_file_actions_adddup2(&actions, ours.rawValue, child) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags: Int16 = options.newSession ? LinuxCalls.spawnSetsid : 0
        if let signals = options.defaultSignals {
            var empty = sigset_t()
            sigemptyset(&empty)
            posix_spawnattr_setsigmask(&attributes, &empty)
            var defaults = sigset_t()
            sigemptyset(&defaults)
            for s in signals { sigaddset(&defaults, s) }
            posix_spawnattr_setsigdefault(&attributes, &defaults)
            flags |= Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        }
        posix_spawnattr_setflags(&attributes, flags)

        let argv = ([argument0 ?? executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let envp = options.environment.map { $0.map { strdup($0) } + [nil] }
        defer { envp?.forEach { free($0) } }
        var pid = pid_t()
        let search = options.searchPath && !executable.contains("/")
        let rc = argv.withUnsafeBufferPointer { a in
            let argvPointer = UnsafeMutablePointer(mutating: a.baseAddress!)
            func start(_ env: UnsafePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
                search ? posix_spawnp(&pid, executable, &actions, &attributes, argvPointer, env)
                       : posix_spawn(&pid, executable, &actions, &attributes, argvPointer, env)
            }
            if let envp { return envp.withUnsafeBufferPointer { start($0.baseAddress!) } }
            return start(environ)
        }
        guard rc == 0 else {
            for p in pipes.values { _ = Glibc.close(p.read) }
            throw SystemError(code: rc, operation: "posix_spawn", path: executable)
        }
        return ChildProcess(pid: pid, stdout: pipes[1].map { FileDescriptor(rawValue: $0.read) },
                            stderr: pipes[2].map { FileDescriptor(rawValue: $0.read) })
    }

    /// Waits for the child to end.
    public func wait() throws(SystemError) -> ExitStatus {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            let code = errno
            guard code == EINTR else { throw SystemError(code: code, operation: "waitpid") }
        }
        return ExitStatus(raw: status)
    }

    /// The status if the child has ended, else nil (waitpid WNOHANG).
    public func poll() throws(SystemError) -> ExitStatus? {
        var status: Int32 = 0
        while true {
            let w = waitpid(pid, &status, WNOHANG)
            if w == pid { return ExitStatus(raw: status) }
            if w == 0 { return nil }
            let code = errno
            guard code == EINTR else { throw SystemError(code: code, operation: "waitpid") }
        }
    }

    /// Signals this child alone, by its PID.
    public func kill(_ signal: Int32 = SIGKILL) {
        _ = Glibc.kill(pid, signal)
    }

    /// What `collect` gathered.
    public struct Output: Sendable {
        public var status: ExitStatus
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        /// True when the timeout expired and the child was killed.
        public var timedOut: Bool
    }

    /// Waits for the child, reading its piped output meanwhile; past `timeout` seconds it is
    /// killed. Closes the pipes. Output is read until the child exits, then whatever is already
    /// buffered is drained: EOF is not waited for, since a daemon the child left may hold the pipes.
    public func collect(timeout: Double? = nil) throws(SystemError) -> Output {
        defer { stdout?.close(); stderr?.close() }
        var out: [UInt8] = [], err: [UInt8] = []
        var open = [stdout, stderr].compactMap { $0?.rawValue }
        let deadline = timeout.map { Self.monotonicSeconds() + $0 }
        var timedOut = false
        var status: ExitStatus?
        while status == nil {
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            // A short interval so an exit is noticed even while a daemon keeps the pipes open.
            _ = Glibc.poll(&fds, nfds_t(fds.count), 50)
            for fd in fds where fd.revents != 0 {
                let more = fd.fd == stdout?.rawValue ? Self.drain(fd.fd, into: &out) : Self.drain(fd.fd, into: &err)
                if !more { open.removeAll { $0 == fd.fd } }
            }
            status = try poll()
            if status == nil, !timedOut, let deadline, Self.monotonicSeconds() > deadline {
                timedOut = true
                kill()
            }
        }
        if let stdout { _ = Self.drain(stdout.rawValue, into: &out) }
        if let stderr { _ = Self.drain(stderr.rawValue, into: &err) }
        return Output(status: status!, stdout: out, stderr: err, timedOut: timedOut)
    }

    /// Spawns, then `collect`s.
    public static func run(_ executable: String, _ arguments: [String], options: SpawnOptions = SpawnOptions(),
                           timeout: Double? = nil) throws(SystemError) -> Output {
        try spawn(executable, arguments, options: options).collect(timeout: timeout)
    }

    /// Reads what is available now; false at EOF or on a hard error.
    private static func drain(_ fd: Int32, into buffer: inout [UInt8]) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
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
