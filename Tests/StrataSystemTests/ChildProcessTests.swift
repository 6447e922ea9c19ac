import Testing
import Glibc
@testable import StrataSystem

@Suite struct ChildProcessTests {
    @Test func pipesCaptureOutputAndTheExitCode() throws {
        let out = try ChildProcess.run("/bin/sh", ["-c", "printf out; printf err >&2; exit 3"],
                                       options: SpawnOptions(stdin: .null, stdout: .pipe, stderr: .pipe))
        #expect(out.stdout == Array("out".utf8))
        #expect(out.stderr == Array("err".utf8))
        #expect(out.status.exitCode == 3 && out.status.signal == nil && out.status.code == 3)
        #expect(!out.timedOut)
    }

    @Test func aTimeoutKillsTheChild() throws {
        let out = try ChildProcess.run("/bin/sleep", ["30"], options: SpawnOptions(stdout: .pipe), timeout: 0.3)
        #expect(out.timedOut)
        #expect(out.status.signal == SIGKILL && out.status.exitCode == nil && out.status.code == 128 + SIGKILL)
    }

    @Test func withoutATimeoutTheChildRunsToItsEnd() throws {
        let child = try ChildProcess.spawn("/bin/sh", ["-c", "exit 0"])
        #expect(try child.wait() == ExitStatus(raw: 0))
        #expect(child.stdout == nil && child.stderr == nil)
    }

    @Test func streamsGoToAFileADescriptorOrNowhere() throws {
        let scratch = try ScratchDirectory()
        // A file opened in the child.
        let file = scratch.child("out")
        let viaFile = SpawnOptions(stdin: .null, stdout: .file(file, flags: O_WRONLY | O_CREAT | O_TRUNC), stderr: .null)
        #expect(try ChildProcess.run("/bin/sh", ["-c", "echo to-file; echo hidden >&2"], options: viaFile).status.code == 0)
        #expect(try FileIO.readAll(file) == Array("to-file\n".utf8))
        // One of ours, duplicated into the child.
        let fd = try FileDescriptor.openat(scratch.fd, "err", O_RDWR | O_CREAT, mode: 0o600)
        defer { fd.close() }
        let viaDescriptor = SpawnOptions(stdout: .null, stderr: .descriptor(fd))
        #expect(try ChildProcess.run("/bin/sh", ["-c", "echo to-fd >&2; echo hidden"], options: viaDescriptor).status.code == 0)
        #expect(try FileIO.readAll(scratch.child("err")) == Array("to-fd\n".utf8))
        // stdin on /dev/null: the child reads end of file at once.
        let out = try ChildProcess.run("/bin/sh", ["-c", "cat; echo done"], options: SpawnOptions(stdin: .null, stdout: .pipe))
        #expect(out.stdout == Array("done\n".utf8))
    }

    @Test func environmentArgumentZeroAndPathSearch() throws {
        let options = SpawnOptions(stdout: .pipe, environment: ["STRATA_X=42", "PATH=/usr/bin:/bin"], searchPath: true)
        let out = try ChildProcess.run("sh", ["-c", "echo $STRATA_X $0"], options: options)
        #expect(String(decoding: out.stdout, as: UTF8.self) == "42 sh\n")
        let renamed = try ChildProcess.spawn("/bin/sh", ["-c", "echo $0"], argument0: "custom", options: SpawnOptions(stdout: .pipe))
        #expect(String(decoding: try renamed.collect().stdout, as: UTF8.self) == "custom\n")
        let added = SpawnOptions.environment(adding: ["STRATA_ADDED": "1"])
        #expect(added.last == "STRATA_ADDED=1")
    }

    @Test func aMissingProgramIsASystemErrorNamingIt() {
        #expect(throws: SystemError(code: ENOENT, operation: "posix_spawn", path: "/nonexistent/strata-program")) {
            _ = try ChildProcess.spawn("/nonexistent/strata-program", [])
        }
    }
}
