#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Indexes are mapped, not parsed, at mount:
/// the kernel pages in only what lookups touch, and mappings are shared between threads.
public final class MappedFile: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public let path: String

    public init(path: String) throws {
        self.path = path
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        let size = Int(try fd.stat().st_size)
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            return
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_SHARED, fd.rawValue, 0), base != MAP_FAILED else {
            throw SystemError(code: errno, operation: "mmap", path: path)
        }
        bytes = UnsafeRawBufferPointer(start: base, count: size)
    }

    /// Tells the kernel that reads will be few and scattered: no read-ahead, no fault-around and
    /// no huge-page mappings, so touching a header maps a page, not megabytes of the file.
    public func adviseSparseAccess() {
        guard let base = bytes.baseAddress else { return }
        let p = UnsafeMutableRawPointer(mutating: base)
        _ = madvise(p, bytes.count, MADV_RANDOM)
        _ = madvise(p, bytes.count, 15)   // MADV_NOHUGEPAGE (not exported by Glibc's module)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
    }
}
