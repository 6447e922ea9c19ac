#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A thin owner-less wrapper of a file descriptor: one method per system call,
/// errno turned into `SystemError`. Closing is explicit.
public struct FileDescriptor: Sendable, Hashable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws -> FileDescriptor {
        let fd = try retryOnInterrupt("open", path: path) { Glibc.open(path, flags | O_CLOEXEC, mode) }
        return FileDescriptor(rawValue: fd)
    }

    public static func openat(_ dir: FileDescriptor, _ name: UnsafePointer<CChar>, _ flags: Int32,
                              mode: mode_t = 0o644) throws(SystemError) -> FileDescriptor {
        let fd = try retryOnInterrupt("openat", path: String(cString: name)) { Glibc.openat(dir.rawValue, name, flags | O_CLOEXEC, mode) }
        return FileDescriptor(rawValue: fd)
    }

    public func close() {
        _ = Glibc.close(rawValue)
    }

    /// Reads up to `buffer.count` bytes at `offset`; returns the count read (0 at end of file).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(SystemError) -> Int {
        guard buffer.count > 0 else { return 0 }
        return try retryOnInterrupt("pread") { Glibc.pread(rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    /// Fills the buffer from `offset`, looping over short reads; returns fewer bytes only at end of file.
    public func readFully(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(SystemError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = try read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[done...]), at: offset + UInt64(done))
            if n == 0 { break }
            done += n
        }
        return done
    }

    /// Reads sequentially from the current position.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> Int {
        guard buffer.count > 0 else { return 0 }
        return try retryOnInterrupt("read") { Glibc.read(rawValue, buffer.baseAddress, buffer.count) }
    }

    public func writeAll(_ buffer: UnsafeRawBufferPointer) throws(SystemError) {
        var done = 0
        while done < buffer.count {
            let n = try retryOnInterrupt("write") { Glibc.write(rawValue, buffer.baseAddress! + done, buffer.count - done) }
            done += n
        }
    }

    public func writeAll(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in try writeAll(b) }
    }

    public func writeAll(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(SystemError) {
        var done = 0
        while done < buffer.count {
            done += try write(UnsafeRawBufferPointer(rebasing: buffer[done...]), at: offset + UInt64(done))
        }
    }

    /// One pwrite: returns the count written, which may be short.
    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(SystemError) -> Int {
        guard buffer.count > 0 else { return 0 }
        return try retryOnInterrupt("pwrite") { Glibc.pwrite(rawValue, buffer.baseAddress, buffer.count, off_t(offset)) }
    }

    public func truncate(_ size: UInt64) throws(SystemError) {
        _ = try retryOnInterrupt("ftruncate") { ftruncate(rawValue, off_t(size)) }
    }

    public func fileSystemStatistics() throws(SystemError) -> statvfs {
        var s = statvfs()
        _ = try retryOnInterrupt("fstatvfs") { fstatvfs(rawValue, &s) }
        return s
    }

    public func stat() throws(SystemError) -> Glibc.stat {
        var st = Glibc.stat()
        _ = try retryOnInterrupt("fstat") { Glibc.fstat(rawValue, &st) }
        return st
    }

    public func sync(dataOnly: Bool = false) throws(SystemError) {
        _ = try retryOnInterrupt(dataOnly ? "fdatasync" : "fsync") { dataOnly ? fdatasync(rawValue) : Glibc.fsync(rawValue) }
    }
}
