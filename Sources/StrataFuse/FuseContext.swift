import CFuse
import StrataFS

/// What the C callbacks reach through the session's userdata: the filesystem and the
/// options that shape replies. Immutable, so the worker threads share it without locks.
// @unchecked: the `var`s are set once in INIT, before the kernel sends any other request.
final class FuseContext: @unchecked Sendable {
    let fileSystem: any FileSystem
    let options: FuseMountOptions
    /// Set when the filesystem takes writes (an upper layer) and the mount is not `ro`:
    /// the write operations are installed and opens for writing go through.
    let writable: (any WritableFileSystem)?
    /// Set once in INIT, before any request: the kernel lets a read-only filesystem answer
    /// OPEN and OPENDIR with ENOSYS and then stops sending them (and RELEASE) at all, caching
    /// pages and listings as with keep_cache: two round trips fewer per file a reader opens.
    var zeroMessageOpen = false
    var zeroMessageOpendir = false
    /// Copies of the options every reply needs: reading them from `options` would copy the
    /// struct, retaining and releasing its strings on every request.
    let entryTimeout: Double
    let attrTimeout: Double
    let negativeTimeout: Double
    let keepCache: Bool
    /// A writable mount's timeouts for stable nodes (`NodeAttributes.stable`).
    let stableTimeout: Double
    /// The timeouts as the kernel takes them, for replies written without libfuse.
    let entryValid: WireTimeout
    let attrValid: WireTimeout

    init(fileSystem: any FileSystem, options: FuseMountOptions) {
        self.fileSystem = fileSystem
        self.options = options
        entryTimeout = options.entryTimeout
        attrTimeout = options.attrTimeout
        negativeTimeout = options.negativeTimeout
        keepCache = options.keepCache
        stableTimeout = max(options.stableTimeout, max(options.entryTimeout, options.attrTimeout))
        entryValid = WireTimeout(options.entryTimeout)
        attrValid = WireTimeout(options.attrTimeout)
        self.writable = options.readOnly ? nil : fileSystem as? any WritableFileSystem
    }

    /// The entry and attribute timeouts of a reply about `attributes`: a stable node of a
    /// writable mount is kept as long as a read-only mount's.
    @inline(__always)
    func timeouts(_ attributes: NodeAttributes) -> (entry: Double, attr: Double) {
        if writable != nil && attributes.stable { return (stableTimeout, stableTimeout) }
        return (entryTimeout, attrTimeout)
    }

    @inline(__always)
    static func of(_ request: fuse_req_t) -> FuseContext {
        Unmanaged<FuseContext>.fromOpaque(fuse_req_userdata(request)!).takeUnretainedValue()
    }
}

/// A timeout in seconds split as the kernel's replies carry it, rounded as libfuse's
/// calc_timeout_sec and calc_timeout_nsec do.
struct WireTimeout {
    let seconds: UInt64
    let nanoseconds: UInt32

    init(_ timeout: Double) {
        guard timeout > 0 else { seconds = 0; nanoseconds = 0; return }
        guard timeout < Double(UInt64.max) else { seconds = .max; nanoseconds = 0; return }
        seconds = UInt64(timeout)
        let fraction = timeout - Double(seconds)
        nanoseconds = fraction >= 0.999999999 ? 999_999_999 : UInt32(max(0, fraction) * 1e9)
    }
}
