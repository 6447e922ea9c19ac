/// glibc's malloc gives each thread that allocates its own arena (up to 8 per CPU), and each
/// arena keeps what was freed in it: a daemon whose worker threads make a few small allocations
/// per request holds several MiB more than it uses. Limiting the arenas makes threads share them.
public enum MallocArenas {
    @_silgen_name("mallopt")
    private static func mallopt(_ parameter: Int32, _ value: Int32) -> Int32

    /// glibc's M_ARENA_MAX (malloc.h, which the Glibc module does not import).
    private static let arenaMax: Int32 = -8

    /// glibc's M_MMAP_THRESHOLD.
    private static let mmapThreshold: Int32 = -3

    /// Serves allocations of `bytes` or more with mappings of their own, returned to the kernel
    /// when freed. Setting it turns off glibc's sliding threshold, which after the first such
    /// buffer is freed serves the next ones (up to 32 MiB) from the arenas, where a few
    /// transient MiB-sized buffers per request (compressed spans being verified, replies across
    /// spans) stay resident after use. Best effort: false if glibc refuses.
    @discardableResult
    public static func mapAllocations(from bytes: Int) -> Bool {
        mallopt(mmapThreshold, Int32(clamping: bytes)) == 1
    }

    /// Caps the arenas threads made from now on may use. Best effort: false if glibc refuses.
    @discardableResult
    public static func limit(_ count: Int) -> Bool {
        mallopt(arenaMax, Int32(max(count, 1))) == 1
    }
}
