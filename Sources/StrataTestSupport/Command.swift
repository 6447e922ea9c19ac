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
        // The test runner may block or ignore signals; the child starts clean.
        let options = SpawnOptions(stdin: .null, stdout: .pipe, stderr: .pipe,
                                   environment: environment.map { $0.map { "\($0.key)=\($0.value)" }.sorted() },
                                   defaultSignals: [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD], searchPath: true)
        let output = try ChildProcess.run(path, args, options: options, timeout: timeout)
        return CommandResult(status: output.status.code, stdout: output.stdout,
                             stderr: String(decoding: output.stderr, as: UTF8.self), timedOut: output.timedOut)
    }

    /// Like `run`, but a non-zero status or a timeout is thrown as `CommandError`.
    @discardableResult
    public static func check(_ path: String, _ args: [String], environment: [String: String]? = nil,
                             timeout: Double = 120) throws -> CommandResult {
        let result = try run(path, args, environment: environment, timeout: timeout)
        if !result.succeeded { throw CommandError(command: [path] + args, result: result) }
        return result
    }
}
