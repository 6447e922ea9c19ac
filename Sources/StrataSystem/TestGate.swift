#if canImport(Glibc)
import Glibc
#endif

/// Tests only: holds a process at a named point so a test can order two processes instead of
/// racing them. The gates are paths from `RuntimeSettings` (nil: no gate, nothing happens).
public enum TestGate {
    /// Creates `gate.reached`, then waits until `gate` exists.
    public static func pass(_ gate: String?) {
        guard let gate else { return }
        let marker = open(gate + ".reached", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        if marker >= 0 { close(marker) }
        wait(for: gate)
    }

    /// Waits until `gate` exists.
    public static func wait(for gate: String) {
        while access(gate, F_OK) != 0 { usleep(10_000) }
    }
}
