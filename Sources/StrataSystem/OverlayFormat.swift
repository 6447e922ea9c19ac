#if canImport(Glibc)
import Glibc
#endif

/// The upper directory format of kernel overlayfs (Documentation/filesystems/overlayfs.rst),
/// written by StrataUpper and read by StrataCommit, so one upper directory works with strata,
/// overlayfs and fuse-overlayfs alike:
/// - a deleted name is a character device 0/0 of that name (a whiteout);
/// - a directory that replaces a lower one, hiding all of its entries, has `trusted.overlay.opaque=y`;
/// - a directory renamed from the lower layers has `trusted.overlay.redirect` = the lower path it
///   merges with ("/a/b" from the lower root, or a name relative to the parent's lower directory);
/// - a metacopy file holds only metadata (`trusted.overlay.metacopy`); its data is the lower file's.
public enum OverlayFormat {
    /// Overlay's own bookkeeping (origin, impure, uuid, nlink, ...): never part of the image,
    /// hidden from callers and refused to them.
    public static let privatePrefix = "trusted.overlay."
    public static let opaqueXattr = "trusted.overlay.opaque"
    public static let redirectXattr = "trusted.overlay.redirect"
    public static let metacopyXattr = "trusted.overlay.metacopy"
    /// The opaque value of a directory that hides the lower one ("x" marks a directory that
    /// merely holds xattr-whiteouts; not opaque).
    public static let opaqueValue: [UInt8] = [UInt8(ascii: "y")]

    /// A whiteout's mode (a character device, no permissions) and device number (0/0).
    public static let whiteoutMode: mode_t = S_IFCHR | 0o000
    public static let whiteoutDevice: dev_t = 0

    /// A whiteout is a character device 0/0. Overlay links all whiteouts to one shared inode,
    /// so they must never be taken for hardlinks.
    public static func isWhiteout(_ st: stat) -> Bool {
        st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == whiteoutDevice
    }

    public static func isPrivate(_ name: String) -> Bool { name.hasPrefix(privatePrefix) }
}
