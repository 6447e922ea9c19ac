#if canImport(Glibc)
import Glibc
#endif
@testable import StrataFuse
import StrataFS
import Synchronization
import Testing

/// Runs a FuseServer on its own thread at a fresh directory under the run root. `stop()` unmounts, waits for
/// `run` to return and removes the directory; tests call it in a `defer` so that a failing
/// test leaves no mount behind.
final class MountedServer: @unchecked Sendable {
    let path: String
    let server: FuseServer
    private let thread: StrataFuse.Thread
    private final class Outcome: Sendable {
        let state = Mutex<(ready: Bool, finished: Bool, error: (any Error)?)>((false, false, nil))
        func withLock<T>(_ body: (inout (ready: Bool, finished: Bool, error: (any Error)?)) -> T) -> T {
            state.withLock { body(&$0) }
        }
    }
    private let outcome = Outcome()
    private var stopped = false

    init(_ fileSystem: any FileSystem, options: FuseMountOptions = FuseMountOptions()) throws {
        path = try makeTestDirectory("strata-fuse-test-")
        server = try FuseServer(fileSystem: fileSystem, mountpoint: path, options: options)
        let server = self.server, outcome = self.outcome
        thread = Thread.start {
            do {
                try server.run { outcome.withLock { $0.ready = true } }
            } catch {
                outcome.withLock { $0.error = error }
            }
            outcome.withLock { $0.finished = true }
        }
    }

    /// Waits until the mount answers; throws what `run` threw if it ended first.
    func waitReady(seconds: Int = 20) throws {
        for _ in 0..<(seconds * 100) {
            let state = outcome.withLock { ($0.ready, $0.finished, $0.error) }
            if state.0 { return }
            if let error = state.2 { throw error }
            if state.1 { throw FuseError(.serverFailed(EIO), mountpoint: path) }
            usleep(10_000)
        }
        throw FuseError(.serverFailed(ETIMEDOUT), mountpoint: path)
    }

    /// Stops the server and waits for `run` to return; returns what it threw, if anything.
    @discardableResult
    func stop() -> (any Error)? {
        guard !stopped else { return nil }
        stopped = true
        server.stop()
        thread.join()
        // Last resort, so that no test leaves a mount behind even if stop() misbehaved.
        if FuseMount.isMounted(path) { try? FuseMount.unmount(path) }
        rmdir(path)
        return outcome.withLock { $0.error }
    }

    func file(_ name: String) -> String { path + "/" + name }
}

/// A fresh directory under the run root scripts/test cleans (STRATA_TEST_TMP; /tmp when run
/// without it), so a mount a crashed test left there is unmounted and removed after the run.
func makeTestDirectory(_ prefix: String) throws -> String {
    let parent = getenv("STRATA_TEST_TMP").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array("\(parent)/\(prefix)XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw FSError(errno) }
    return String(cString: made)
}

/// Runs `server` on a thread and returns what `run` threw, or nil when it returned. `run` is
/// expected to fail at once; if it mounts instead (the bug a test looks for), it would serve
/// forever: after `seconds` the server is stopped and unmounted and the test fails by name.
func runExpectingPromptReturn(_ server: FuseServer, mountpoint: String, seconds: Int = 30,
                              sourceLocation: SourceLocation = #_sourceLocation) -> (any Error)? {
    final class Box: @unchecked Sendable {
        let state = Mutex<(done: Bool, error: (any Error)?)>((false, nil))
    }
    let box = Box()
    let thread = Thread.start {
        do { try server.run {} } catch { box.state.withLock { $0.error = error } }
        box.state.withLock { $0.done = true }
    }
    var waited = 0
    while !box.state.withLock({ $0.done }) && waited < seconds * 100 {
        usleep(10_000)
        waited += 1
    }
    if !box.state.withLock({ $0.done }) {
        Issue.record("FuseServer.run at \(mountpoint) did not return within \(seconds) s: it mounted", sourceLocation: sourceLocation)
        server.stop()
        if FuseMount.isMounted(mountpoint) { try? FuseMount.unmount(mountpoint) }
    }
    thread.join()
    return box.state.withLock { $0.error }
}
