#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem

/// The failure message of a readiness result, nil for success (Result<Void, _> is not Equatable).
private func message(_ result: Result<Void, Daemon.StartError>) -> String? {
    if case .failure(let error) = result { return error.message }
    return nil
}

@Suite("Daemon start-up plumbing", .timeLimit(.minutes(10)))
struct DaemonTests {
    private func pipePair() -> (read: FileDescriptor, write: FileDescriptor) {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        return (FileDescriptor(rawValue: fds[0]), FileDescriptor(rawValue: fds[1]))
    }

    @Test("OK, ERR and a silent exit on the readiness pipe")
    func readinessLines() {
        var pair = pipePair()
        Daemon.reportReady(fd: pair.write)
        #expect(throws: Never.self) { try Daemon.waitReady(pair.read).get() }

        pair = pipePair()
        Daemon.reportError(fd: pair.write, message: "/mnt/x: mountpoint does not exist\nsecond line")
        #expect(message(Daemon.waitReady(pair.read)) == "/mnt/x: mountpoint does not exist second line")

        pair = pipePair()
        pair.write.close()
        #expect(message(Daemon.waitReady(pair.read)) == "daemon exited during start-up")
    }

    @Test("--ready-fd is taken out of the arguments")
    func readyArgument() {
        let (fd, remaining) = Daemon.readinessDescriptor(in: ["mount", "--ready-fd", "7", "img", "/mnt"])
        #expect(fd?.rawValue == 7)
        #expect(remaining == ["mount", "img", "/mnt"])
        #expect(Daemon.readinessDescriptor(in: ["mount"]).fd == nil)
    }

    /// /bin/sh stands in for the re-executed strata: `sh -c script --ready-fd 3` sees the flag as
    /// $0 and the descriptor as $1.
    private func spawnShell(_ script: String, environment: [String: String] = [:]) throws -> Result<Void, Daemon.StartError> {
        let (pid, readiness) = try Daemon.spawnDetached(arguments: ["-c", script], extraEnvironment: environment,
                                                        keepStderr: true, executable: "/bin/sh", argument0: "sh")
        let result = Daemon.waitReady(readiness)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        return result
    }

    @Test("spawnDetached: new session, stdio on /dev/null, environment, readiness descriptor")
    func spawn() throws {
        let script = """
            [ "$0" = --ready-fd ] || { echo "ERR flag is $0" >&"$1"; exit 1; }
            sid=$(cut -d' ' -f6 /proc/$$/stat)
            [ "$sid" = "$$" ] || { echo "ERR not a session leader" >&"$1"; exit 1; }
            [ "$(readlink /proc/$$/fd/0)" = /dev/null ] || { echo "ERR stdin" >&"$1"; exit 1; }
            [ "$(readlink /proc/$$/fd/1)" = /dev/null ] || { echo "ERR stdout" >&"$1"; exit 1; }
            [ "$STRATA_TEST_VALUE" = "a b" ] || { echo "ERR environment" >&"$1"; exit 1; }
            echo OK >&"$1"
            """
        #expect(throws: Never.self) { try spawnShell(script, environment: ["STRATA_TEST_VALUE": "a b"]).get() }
        #expect(message(try spawnShell("echo 'ERR cannot mount' >&\"$1\"")) == "cannot mount")
        #expect(message(try spawnShell("exit 3")) == "daemon exited during start-up")
    }
}
