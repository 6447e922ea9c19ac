#if canImport(Glibc)
import Glibc
#endif

/// Stream sockets on a path (AF_UNIX): a listener that accepts, and a client that connects.
/// Thin wrappers; errno becomes `SystemError` naming the socket path.
public enum UnixSocket {
    /// A listening socket bound at `path` (a stale socket file there is replaced).
    public static func listen(_ path: String, backlog: Int32 = 16) throws(SystemError) -> FileDescriptor {
        let fd = try make(path)
        unlink(path)
        do {
            try withAddress(path) { (address, length) throws(SystemError) in
                _ = try retryOnInterrupt("bind", path: path) { bind(fd.rawValue, address, length) }
            }
            _ = try retryOnInterrupt("listen", path: path) { Glibc.listen(fd.rawValue, backlog) }
        } catch {
            fd.close()
            throw error
        }
        return fd
    }

    /// The next connection on a listening socket.
    public static func accept(_ listener: FileDescriptor) throws(SystemError) -> FileDescriptor {
        let fd = try retryOnInterrupt("accept") { Glibc.accept(listener.rawValue, nil, nil) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        return FileDescriptor(rawValue: fd)
    }

    /// A socket connected to the listener at `path`.
    public static func connect(_ path: String) throws(SystemError) -> FileDescriptor {
        let fd = try make(path)
        do {
            try withAddress(path) { (address, length) throws(SystemError) in
                _ = try retryOnInterrupt("connect", path: path) { Glibc.connect(fd.rawValue, address, length) }
            }
        } catch {
            fd.close()
            throw error
        }
        return fd
    }

    /// Everything the peer writes until it closes (or `limit` bytes).
    public static func readAll(_ fd: FileDescriptor, limit: Int = 16 << 20) throws(SystemError) -> [UInt8] {
        var out: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 1)
        defer { buffer.deallocate() }
        while out.count < limit {
            let n = try fd.read(into: buffer)
            if n == 0 { break }
            out += UnsafeRawBufferPointer(rebasing: buffer[0..<n])
        }
        return out
    }

    private static func make(_ path: String) throws(SystemError) -> FileDescriptor {
        FileDescriptor(rawValue: try retryOnInterrupt("socket", path: path) {
            socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        })
    }

    private static func withAddress(_ path: String,
                                    _ body: (UnsafePointer<sockaddr>, socklen_t) throws(SystemError) -> Void) throws(SystemError) {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { throw SystemError(code: ENAMETOOLONG, operation: "socket address", path: path) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + 1)
        let result: Result<Void, SystemError> = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                do throws(SystemError) { try body(p, length); return .success(()) } catch { return .failure(error) }
            }
        }
        try result.get()
    }
}
