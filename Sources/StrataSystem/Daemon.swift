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

        // A new session: no controlling terminal, so the shell's SIGHUP and job control do not
        // reach the daemon. Signals start unblocked and at their defaults, whatever the parent did.
        // With `standardError`, the caller reads what the child says before it is ready (its real error).
        let stderr: SpawnOptions.Stream = if let standardError { .descriptor(FileDescriptor(rawValue: standardError)) }
            else if keepStderr ?? arguments.contains("--debug") { .inherit } else { .null }
        let options = SpawnOptions(stdin: .null, stdout: .null, stderr: stderr,
                                   environment: SpawnOptions.environment(adding: extraEnvironment),
                                   descriptors: [(FileDescriptor(rawValue: writeEnd), childReadyDescriptor)],
                                   newSession: true, defaultSignals: [SIGINT, SIGTERM, SIGHUP, SIGPIPE])
        let child: ChildProcess
        do {
            child = try ChildProcess.spawn(executable, arguments + [readyFlag, String(childReadyDescriptor)],
                                           argument0: argument0 ?? CommandLine.arguments.first ?? "strata", options: options)
        } catch {
            close(readEnd)
            throw error
        }
        return (child.pid, FileDescriptor(rawValue: readEnd))
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
