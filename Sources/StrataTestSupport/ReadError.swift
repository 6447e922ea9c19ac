#if canImport(Glibc)
import Glibc
#endif

/// The errno a 4 KiB read of `path` at `offset` ends with: 0 when it read, the open's errno when
/// the file cannot be opened. Opened O_CLOEXEC: a child another test spawns meanwhile must not
/// inherit the descriptor and keep the mount busy at its unmount.
public func readError(_ path: String, at offset: Int64 = 0) -> Int32 {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return errno }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 4096)
    return pread(fd, &buffer, buffer.count, off_t(offset)) < 0 ? errno : 0
}
