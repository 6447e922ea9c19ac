#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import Testing

/// How a test says it cannot run here, so that the skip is visible and `CI=true scripts/test`
/// fails on it (every tool, module and privilege the tests need comes from scripts/deps):
/// - a whole test or suite: `.enabled(if: CONDITION, "needs …")`; Swift Testing prints
///   `Test NAME skipped: "needs …"`, which scripts/test counts;
/// - inside a body (one argument case of several, a capability found only by trying):
///   `try Requirement.require(CONDITION, "needs …")`. It cancels the test (or only the
///   running case) and appends the reason to `$STRATA_TEST_SKIP_LOG`, because a cancelled
///   case is not printed by default.
/// Never `return` early or drop a case from `arguments:`: that passes without a trace.
public enum Requirement {
    public static func require(_ condition: Bool, _ reason: String,
                               sourceLocation: SourceLocation = #_sourceLocation) throws {
        guard !condition else { return }
        let name = Test.current?.name ?? "?"
        let argument = Test.Case.current.map { _ in " (one argument case)" } ?? ""
        record("\(sourceLocation.fileID):\(sourceLocation.line) \(name)\(argument): \(reason)")
        try Test.cancel(Comment(rawValue: reason), sourceLocation: sourceLocation)
    }

    /// True when running as root; the reason to give when not.
    public static var isRoot: Bool { getuid() == 0 }

    /// Appends one line to the skip log named by STRATA_TEST_SKIP_LOG (set by scripts/test).
    static func record(_ line: String) {
        guard let value = getenv("STRATA_TEST_SKIP_LOG"), value.pointee != 0 else { return }
        let path = String(cString: value)
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return }
        defer { close(fd) }
        let bytes = Array((line.split(separator: "\n").joined(separator: " ") + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }
}

extension Trait where Self == TimeLimitTrait {
    /// The time limit every suite that mounts carries (`@Suite(..., .mountTimeLimit)`), so a
    /// test that waits forever on a mount fails by name. A test stuck inside a system call
    /// cannot be cancelled: Swift Testing records the failure but still waits for it, and
    /// then scripts/test's own timeout (STRATA_TEST_TIMEOUT) ends the run and unmounts.
    public static var mountTimeLimit: Self { .timeLimit(.minutes(10)) }
}
