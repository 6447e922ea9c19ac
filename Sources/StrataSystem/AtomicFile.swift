#if canImport(Glibc)
import Glibc
#endif

/// A file written whole and then put in place by one rename: a temporary in the target's
/// directory is filled (streamed: write as often as needed), fsynced when it must survive a
/// crash, and renamed; on failure it is removed. Readers see the old file or the new one, never
/// a part. Every temporary's name holds `.tmp.` (`isTemporary`), which is how cleaners tell a
/// file being written (or left by a crash) from a finished one.
public final class AtomicFile {
    public let temporaryPath: String
    public let descriptor: FileDescriptor
    private var isOpen = true

    /// Creates the temporary `temporaryPath` (one of the names below). `readable`: the writer
    /// reads it back before it is put in place (e.g. to hash it).
    public init(temporaryPath: String, mode: mode_t = 0o644, readable: Bool = false) throws {
        self.temporaryPath = temporaryPath
        descriptor = try FileDescriptor.open(temporaryPath, (readable ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL, mode: mode)
    }

    /// A temporary beside `path`, which it will replace.
    public convenience init(replacing path: String, mode: mode_t = 0o644) throws {
        try self.init(temporaryPath: AtomicFile.temporaryPath(for: path), mode: mode)
    }

    deinit { if isOpen { descriptor.close() } }

    /// The temporary name of a file that becomes `path`.
    public static func temporaryPath(for path: String) -> String {
        "\(path).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
    }

    /// A temporary in `directory` for a file whose name is known only once written (a blob
    /// named by its digest). `prefix` ends in ".tmp." and names the writer.
    public static func temporaryPath(in directory: String, prefix: String = ".tmp.") -> String {
        "\(directory)/\(prefix)\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Whether a file name is one of the temporaries above.
    public static func isTemporary(_ name: String) -> Bool { name.contains(".tmp.") }

    public func write(_ bytes: UnsafeRawBufferPointer) throws { try descriptor.writeAll(bytes) }

    /// Puts the file in place as `path`. `durable`: the data and the rename survive a crash
    /// (fsync of the file, then of its directory); without it nothing is synced, for cache
    /// files that are checked when read and made again when lost. The temporary is removed
    /// if this fails.
    public func commit(as path: String, durable: Bool = true) throws {
        do {
            if durable { try descriptor.sync() }
        } catch {
            discard()
            throw error
        }
        close()
        try AtomicFile.publish(temporaryPath, as: path, durable: durable)
    }

    /// Drops the temporary (after a failure, or when the file is not wanted).
    public func discard() {
        close()
        unlink(temporaryPath)
    }

    private func close() {
        if isOpen { descriptor.close() }
        isOpen = false
    }

    /// Renames a finished temporary that another writer filled (and synced, if `durable`) into
    /// place as `path`; removes it if the rename fails.
    public static func publish(_ temporary: String, as path: String, durable: Bool) throws {
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw SystemError(code: code, operation: "rename", path: path)
        }
        if durable { FileIO.syncDirectory(of: path) }
    }
}
