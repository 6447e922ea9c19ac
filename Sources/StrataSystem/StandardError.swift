#if canImport(Glibc)
import Glibc
#endif

/// Writes a string to standard error unbuffered (libc's `stderr` global is not concurrency-safe in Swift 6).
public func writeStandardError(_ text: String) {
    let bytes = Array(text.utf8)
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(2, $0.baseAddress! + done, bytes.count - done) }
        if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
        done += n
    }
}
