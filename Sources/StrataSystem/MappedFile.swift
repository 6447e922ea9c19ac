#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory mapping of a whole file. Indexes are mapped, not parsed, at mount:
/// the kernel pages in only what lookups touch, and mappings are shared between threads.
// @unchecked: immutable once shared (`load` runs before); the bytes are only read.
public final class MappedFile: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public let path: String
    /// false for `init(loadingOnDemand:)`: only the ranges `load` read hold the file's bytes.
    public let isResident: Bool
    private let descriptor: FileDescriptor?

    public init(path: String) throws {
        self.path = path
        isResident = true
        descriptor = nil
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

    /// The file's size in address space, but none of its bytes: `load` reads the ranges a
    /// caller needs into private memory, `read` copies others out. For a file of which a few
    /// scattered pieces are used: a mapping of it would be paged in by whole large folios
    /// (2 MiB on recent kernels) around each piece, resident memory for nothing.
    public init(loadingOnDemand path: String) throws {
        self.path = path
        isResident = false
        let fd = try FileDescriptor.open(path, O_RDONLY)
        descriptor = fd
        do {
            let size = Int(try fd.stat().st_size)
            guard size > 0, let base = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  base != MAP_FAILED else {
                bytes = UnsafeRawBufferPointer(start: nil, count: 0)
                return
            }
            bytes = UnsafeRawBufferPointer(start: base, count: size)
        } catch {
            fd.close()
            throw error
        }
    }

    /// Reads `range` of the file into place (`init(loadingOnDemand:)`, before sharing the object).
    public func load(_ range: Range<Int>) throws {
        guard let descriptor, let base = bytes.baseAddress, range.lowerBound >= 0, range.upperBound <= bytes.count else { return }
        let target = UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(mutating: base) + range.lowerBound, count: range.count)
        guard try descriptor.readFully(into: target, at: UInt64(range.lowerBound)) == range.count else {
            throw SystemError(code: EIO, operation: "read", path: path)
        }
    }

    /// A copy of `range` of the file, read from it (or from the mapping when resident).
    public func read(_ range: Range<Int>) throws -> [UInt8] {
        guard let descriptor else { return Array(bytes[range]) }
        var out = [UInt8](repeating: 0, count: range.count)
        let n = try out.withUnsafeMutableBytes { try descriptor.readFully(into: $0, at: UInt64(range.lowerBound)) }
        guard n == range.count else { throw SystemError(code: EIO, operation: "read", path: path) }
        return out
    }

    /// Drops the pages wholly inside `range` from this process's resident memory (a mapping
    /// read through once, e.g. to check it): they stay in the page cache and are mapped again
    /// when next touched. Nothing for a file not mapped resident.
    public func release(_ range: Range<Int>) {
        guard isResident, let base = bytes.baseAddress else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (Int(bitPattern: base) + range.lowerBound + page - 1) / page * page
        let end = (Int(bitPattern: base) + min(range.upperBound, bytes.count)) / page * page
        guard end > start else { return }
        _ = madvise(UnsafeMutableRawPointer(bitPattern: start), end - start, MADV_DONTNEED)
    }

    deinit {
        if let base = bytes.baseAddress { munmap(UnsafeMutableRawPointer(mutating: base), bytes.count) }
        descriptor?.close()
    }
}
