#if canImport(Glibc)
import Glibc
#endif
@testable import StrataFuse
import StrataFS
import Synchronization

/// Runs a FuseServer on its own thread at a fresh /tmp directory. `stop()` unmounts, waits for
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
        var template = Array("/tmp/strata-fuse-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { fatalError("mkdtemp failed") }
        path = String(cString: made)
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
