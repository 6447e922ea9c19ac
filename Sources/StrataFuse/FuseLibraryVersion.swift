import CFuse

/// libfuse as loaded at run time (not the headers built against), for `strata --version`.
public enum FuseLibraryVersion {
    public static var loaded: String { String(cString: fuse_pkgversion()) }
}
