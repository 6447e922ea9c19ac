#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataSystem
import StrataTestSupport

/// A snapshot store in a temporary directory, driven through the `strata snapshot` and
/// `strata gc` commands. Whatever the store mounted (rootfs and temporary lower mounts under
/// ROOT/snapshots) is unmounted by `close()` or, failing that, by deinit.
final class SnapshotStoreFixture: @unchecked Sendable {
    let temp: TempDirectory
    var root: String { temp.child("root") }
    private var closed = false

    init(prefix: String = "strata-test-snapshot-") throws {
        temp = try TempDirectory(prefix: prefix)
    }

    static var available: Bool {
        getuid() == 0 && StrataBinary.isBuilt && access("/dev/fuse", R_OK | W_OK) == 0
    }

    /// `strata snapshot --root ROOT ARGS...`.
    func run(_ args: [String], environment: [String: String]? = nil) throws -> CommandResult {
        try Command.run(try StrataBinary.path(), ["snapshot", "--root", root] + args, environment: environment, timeout: 300)
    }

    /// Like `run`, but a failure is thrown.
    @discardableResult
    func check(_ args: [String]) throws -> String {
        let r = try run(args)
        guard r.succeeded else {
            throw HarnessError("strata snapshot \(args.joined(separator: " ")) failed (\(r.status)): \(r.stderr)")
        }
        return r.stdoutString
    }

    /// The mountpoint of KEY (mounting it).
    func mount(_ key: String) throws -> String {
        try check(["mounts", key]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func gc(_ args: [String] = []) throws -> String {
        try Command.check(try StrataBinary.path(), ["gc", "--root", root] + args, timeout: 300).stdoutString
    }

    func statJSON(_ key: String) throws -> [String: Any] {
        try jsonObject(check(["stat", "--json", key]))
    }

    /// Mount points inside the store, deepest first.
    func mountsInStore() -> [String] {
        MountTable.mountPoints().filter { $0.hasPrefix(root + "/") }.sorted { $0.count > $1.count }
    }

    func close() throws {
        guard !closed else { return }
        closed = true
        for mountpoint in mountsInStore() { try Mounts.forceUnmount(mountpoint) }
    }

    deinit {
        if !closed { for mountpoint in mountsInStore() { try? Mounts.forceUnmount(mountpoint) } }
    }
}
