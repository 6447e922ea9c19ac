#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public enum FileIO {
    /// Reads a whole (small) file: manifests, configs, index.json.
    public static func readAll(_ path: String) throws -> [UInt8] {
        let fd = try FileDescriptor.open(path, O_RDONLY)
        defer { fd.close() }
        let size = Int(try fd.stat().st_size)
        var bytes = [UInt8](repeating: 0, count: max(size, 0))
        var total = 0
        if size > 0 {
            total = try bytes.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in try fd.readFully(into: b, at: 0) }
        }
        // A file that grew while read: keep reading to the end.
        var chunk = [UInt8](repeating: 0, count: 65536)
        bytes.removeSubrange(total...)
        while true {
            let n = try chunk.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in try fd.read(into: b, at: UInt64(bytes.count)) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return bytes
    }

    /// Writes a file atomically (see `AtomicFile`): readers see the old content or the new
    /// one, never a part. Without `durable`, nothing is fsynced: for caches whose files are
    /// checked when read, where a file lost in a crash is only made again.
    public static func writeAtomically(_ path: String, _ bytes: UnsafeRawBufferPointer, mode: mode_t = 0o644,
                                       durable: Bool = true) throws {
        let file = try AtomicFile(replacing: path, mode: mode)
        do { try file.write(bytes) } catch {
            file.discard()
            throw error
        }
        try file.commit(as: path, durable: durable)
    }

    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, durable: Bool = true) throws {
        try bytes.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in try writeAtomically(path, b, mode: mode, durable: durable) }
    }

    /// fsyncs the directory holding `path`, so a rename into it survives a crash.
    public static func syncDirectory(of path: String) {
        let dir = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let fd = Glibc.open(dir.isEmpty ? "/" : dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); _ = Glibc.close(fd) }
    }

    /// mkdir -p.
    public static func makeDirectories(_ path: String, mode: mode_t = 0o755) throws {
        var current = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            current += "/" + part
            if mkdir(current, mode) != 0 && errno != EEXIST {
                throw SystemError(code: errno, operation: "mkdir", path: current)
            }
        }
    }

    /// The names in a directory (without "." and ".."), in directory order.
    public static func names(in path: String) throws(SystemError) -> [[UInt8]] {
        let dir = try FileDescriptor.openat(.currentDirectory, path, O_RDONLY | O_DIRECTORY)
        defer { dir.close() }
        do { return try dir.entries().map(\.name) } catch {
            throw SystemError(code: error.code, operation: error.operation, path: path)
        }
    }

    /// mkdtemp: a new directory `<parent>/<prefix>XXXXXX`, mode 0700; returns its path.
    public static func makeTemporaryDirectory(in parent: String, prefix: String) throws(SystemError) -> String {
        var template = Array("\(parent)/\(prefix)XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw SystemError(code: errno, operation: "mkdtemp", path: parent)
        }
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// mkstemp, then unlink: a file of our own that no name reaches and the kernel frees on close.
    public static func makeAnonymousFile(in parent: String, prefix: String) throws(SystemError) -> FileDescriptor {
        var template = Array("\(parent)/\(prefix)XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemError(code: errno, operation: "mkstemp", path: parent) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)   // mkostemp needs _GNU_SOURCE
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        return FileDescriptor(rawValue: fd)
    }

    /// The names in a directory, sorted, without "." and ".."; none if it cannot be read.
    public static func directoryEntries(_ path: String) -> [String] {
        ((try? names(in: path)) ?? []).map { String(decoding: $0, as: UTF8.self) }.sorted()
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// `path` made absolute against the current directory: a daemon runs from "/", so what the
    /// command line named relative to the caller's directory must be resolved first. Unchanged
    /// when already absolute, or when the current directory cannot be read.
    public static func absolute(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        guard let cwd = getcwd(nil, 0) else { return path }
        defer { free(cwd) }
        let directory = String(cString: cwd)
        return directory == "/" ? "/" + path : directory + "/" + path
    }
}
