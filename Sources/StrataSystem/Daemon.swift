#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Going to the background the way `strata mount` needs: the command re-executes itself
/// detached (new session, stdio on /dev/null) with a readiness pipe, and exits 0 only when the
/// child reports that the mount answers, or prints the child's error and exits non-zero.
///
/// The protocol on the pipe is one line: `OK`, or `ERR <message>`. A child that dies before
/// writing one closes the pipe, which the parent reads as end of file.
public enum Daemon {
    /// The flag the child receives, followed by the descriptor number.
    public static let readyFlag = "--ready-fd"
    /// The descriptor the readiness pipe has in the child.
    static let childReadyDescriptor: Int32 = 3

    /// Why a daemon did not start; `message` is the child's own one-line error.
    public struct StartError: Error, CustomStringConvertible, Equatable, Sendable {
        public let message: String
        public init(_ message: String) { self.message = message }
        public var description: String { message }
    }

    /// Starts `executable` (this program by default) with `arguments` plus
    /// `--ready-fd 3`, in a new session, stdin/stdout (and stderr unless `keepStderr`) on
    /// /dev/null, signal mask and shutdown signal handlers reset. Returns the child's pid and
    /// the read end of its readiness pipe (pass it to `waitReady`).
    /// `keepStderr` defaults to true when the arguments contain `--debug`; `standardError`,
    /// when given, is the descriptor the child's stderr goes to instead.
    public static func spawnDetached(arguments: [String], extraEnvironment: [String: String] = [:],
                                     keepStderr: Bool? = nil, executable: String = "/proc/self/exe",
                                     argument0: String? = nil,
                                     standardError: Int32? = nil) throws -> (pid: pid_t, readiness: FileDescriptor) {
        let (readEnd, firstWriteEnd) = try LinuxCalls.pipe2(flags: O_CLOEXEC)
        var writeEnd = firstWriteEnd
        defer { close(writeEnd) }  // the parent's copy: EOF must come when the child's closes
        if writeEnd == childReadyDescriptor {
            // dup2 onto itself would keep close-on-exec; move it out of the way first.
            let moved = fcntl(writeEnd, F_DUPFD_CLOEXEC, 10)
            guard moved >= 0 else { close(readEnd); throw SystemError(code: errno, operation: "fcntl") }
            close(writeEnd)
            writeEnd = moved
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        if let standardError {
            // The caller reads what the child says before it is ready (its real error).
            posix_spawn_file_actions_adddup2(&actions, standardError, 2)
        } else if !(keepStderr ?? arguments.contains("--debug")) {
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        }
        // dup2 to another number clears close-on-exec: only this copy reaches the child.
        posix_spawn_file_actions_adddup2(&actions, writeEnd, childReadyDescriptor)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A new session: no controlling terminal, so the shell's SIGHUP and job control do not
        // reach the daemon. Signals start unblocked and at their defaults, whatever the parent did.
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGINT, SIGTERM, SIGHUP, SIGPIPE] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, LinuxCalls.spawnSetsid | Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv0 = argument0 ?? CommandLine.arguments.first ?? "strata"
        let argv = ([argv0] + arguments + [readyFlag, String(childReadyDescriptor)]).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var environment: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let key = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if extraEnvironment[key] == nil { environment.append(text) }
            index += 1
        }
        for (key, value) in extraEnvironment.sorted(by: { $0.key < $1.key }) { environment.append("\(key)=\(value)") }
        let envp = environment.map { strdup($0) } + [nil]
        defer { envp.forEach { free($0) } }

        var pid = pid_t()
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else {
            close(readEnd)
            throw SystemError(code: rc, operation: "posix_spawn", path: executable)
        }
        return (pid, FileDescriptor(rawValue: readEnd))
    }

    /// Waits for the child's line and closes `fd`. End of file without a line means the child
    /// died (its error, if any, went to its stderr).
    public static func waitReady(_ fd: FileDescriptor) -> Result<Void, StartError> {
        defer { fd.close() }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while line.count < 4096 {
            let n = read(fd.rawValue, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return .failure(StartError("daemon exited during start-up")) }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        let text = String(decoding: line, as: UTF8.self)
        if text == "OK" { return .success(()) }
        if text.hasPrefix("ERR ") { return .failure(StartError(String(text.dropFirst(4)))) }
        return .failure(StartError("daemon sent an unexpected readiness line: \(text)"))
    }

    /// In the child: the service is up. Closes `fd`.
    public static func reportReady(fd: FileDescriptor) {
        send("OK\n", fd)
    }

    /// In the child: start-up failed with `message` (made one line). Closes `fd`.
    public static func reportError(fd: FileDescriptor, message: String) {
        let oneLine = message.map { $0 == "\n" || $0 == "\r" ? " " : String($0) }.joined()
        send("ERR \(oneLine)\n", fd)
    }

    /// In the child: takes `--ready-fd N` out of the arguments.
    public static func readinessDescriptor(in arguments: [String]) -> (fd: FileDescriptor?, remaining: [String]) {
        guard let index = arguments.firstIndex(of: readyFlag), index + 1 < arguments.count,
              let number = Int32(arguments[index + 1]) else { return (nil, arguments) }
        var remaining = arguments
        remaining.removeSubrange(index...(index + 1))
        // Keep it from leaking into anything the daemon starts (fusermount3).
        _ = fcntl(number, F_SETFD, FD_CLOEXEC)
        return (FileDescriptor(rawValue: number), remaining)
    }

    private static func send(_ text: String, _ fd: FileDescriptor) {
        // The parent may be gone (killed while waiting): ignore EPIPE rather than die of SIGPIPE.
        var previous = sigaction()
        var ignore = sigaction()
        ignore.__sigaction_handler.sa_handler = SIG_IGN
        sigaction(SIGPIPE, &ignore, &previous)
        try? fd.writeAll(Array(text.utf8))
        sigaction(SIGPIPE, &previous, nil)
        fd.close()
    }
}
