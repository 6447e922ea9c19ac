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

    /// The names in a directory, sorted, without "." and ".."; none if it cannot be read.
    public static func directoryEntries(_ path: String) -> [String] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public static func exists(_ path: String) -> Bool {
        var st = stat()
        return lstat(path, &st) == 0
    }

    public static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }
}
