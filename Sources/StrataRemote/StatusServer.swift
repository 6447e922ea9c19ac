#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataHash
import StrataSystem

/// Answers `strata status` on the mount's status socket: each connection gets the current
/// status (JSON) and is closed. One thread; the socket and its directory go at `stop()`.
public final class StatusServer: Sendable {
    public let socketPath: String
    private let directory: MountRunDirectory
    private let listener: FileDescriptor
    private let stopped = Locked(false)

    /// The run directory of the mount at `mountpoint` (absolute).
    public static func runDirectory(mountpoint: String, base: String = MountRunDirectory.base) -> MountRunDirectory {
        MountRunDirectory(mountpointSHA256Hex: SHA256Hasher.hex(of: Array(mountpoint.utf8)), base: base)
    }

    /// Listens at the mount's status socket; `status` is called for every connection.
    public init(mountpoint: String, base: String = MountRunDirectory.base, status: @escaping @Sendable () -> [UInt8]) throws {
        directory = Self.runDirectory(mountpoint: mountpoint, base: base)
        try directory.create()
        socketPath = directory.statusSocket
        listener = try UnixSocket.listen(socketPath)
        let listener = self.listener
        let stopped = self.stopped
        Thread.detachNewThread {
            while true {
                guard let connection = try? UnixSocket.accept(listener) else {
                    if stopped.withLock({ $0 }) { return }
                    continue
                }
                if stopped.withLock({ $0 }) { connection.close(); return }
                let bytes = status()
                try? connection.writeAll(bytes)
                connection.close()
            }
        }
    }

    /// Removes the socket (a later `strata status` is told nothing is served there).
    public func stop() {
        stopped.withLock { $0 = true }
        directory.remove(socket: socketPath)
        // Wake the accepting thread: shutdown makes its accept() fail.
        shutdown(listener.rawValue, Int32(SHUT_RDWR))
    }

    /// The status the mount at `mountpoint` serves.
    public static func query(mountpoint: String, base: String = MountRunDirectory.base) throws -> MountStatus {
        let path = runDirectory(mountpoint: mountpoint, base: base).statusSocket
        let fd: FileDescriptor
        do { fd = try UnixSocket.connect(path) } catch {
            throw StatusError("\(mountpoint): no strata mount answers status there (\(error))")
        }
        defer { fd.close() }
        let bytes = try UnixSocket.readAll(fd)
        do { return try MountStatus.decode(bytes) } catch {
            throw StatusError("\(mountpoint): unreadable status from \(path): \(error)")
        }
    }
}

public struct StatusError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
