#if canImport(Glibc)
import Glibc
#endif

/// Tests only: holds a process at a named point so a test can order two processes instead of
/// racing them. When environment variable `variable` names a path P, `pass` creates
/// `P.reached` and waits until P exists; unset, it does nothing.
public enum TestGate {
    public static func pass(_ variable: String) {
        guard let value = getenv(variable), value.pointee != 0 else { return }
        let gate = String(cString: value)
        let marker = open(gate + ".reached", O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
        if marker >= 0 { close(marker) }
        while access(gate, F_OK) != 0 { usleep(10_000) }
    }
}
