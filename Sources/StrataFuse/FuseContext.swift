import CFuse
import StrataFS

/// What the C callbacks reach through the session's userdata: the filesystem and the
/// options that shape replies. Immutable, so the worker threads share it without locks.
final class FuseContext: @unchecked Sendable {
    let fileSystem: any FileSystem
    let options: FuseMountOptions
    /// false until a `WritableFileSystem` exists: opens for writing are refused with EROFS
    /// even on a mount that is not `ro`.
    let writable: Bool

    init(fileSystem: any FileSystem, options: FuseMountOptions) {
        self.fileSystem = fileSystem
        self.options = options
        self.writable = false
    }

    @inline(__always)
    static func of(_ request: fuse_req_t) -> FuseContext {
        Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
    }
}
