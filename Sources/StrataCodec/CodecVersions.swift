import CIsal
import CZlib
import CZstd

/// The compression libraries' versions, for `strata --version`. zlib and zstd answer at run
/// time; isa-l has no such call, so its version is the header's, from build time.
public enum CodecVersions {
    public static var zlib: String { String(cString: zlibVersion()) }
    public static var zstd: String { String(cString: ZSTD_versionString()) }
    public static var isal: String { "\(ISAL_MAJOR_VERSION).\(ISAL_MINOR_VERSION).\(ISAL_PATCH_VERSION)" }
}
