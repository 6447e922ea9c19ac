import StrataFS
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The upper directory format of kernel overlayfs (Documentation/filesystems/overlayfs.rst), so
/// one upper directory works with strata, overlayfs and fuse-overlayfs alike:
/// - a deleted name is a character device 0/0 of that name (a whiteout);
/// - a directory that replaces a lower one, hiding all of its entries, has `trusted.overlay.opaque=y`;
/// - a directory renamed from the lower layers has `trusted.overlay.redirect` = the lower path it
///   merges with ("/a/b", from the lower root), so the rename survives a remount.
enum Overlay {
    static let opaqueXattr = "trusted.overlay.opaque"
    static let redirectXattr = "trusted.overlay.redirect"
    /// Names in this namespace are overlay metadata: hidden from callers, refused to them.
    static let privatePrefix = "trusted.overlay."

    static func isWhiteout(_ st: stat) -> Bool {
        st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0
    }

    static func isPrivate(_ name: String) -> Bool { name.hasPrefix(privatePrefix) }

    static func makeWhiteout(_ dir: Int32, _ name: [CChar]) throws(FSError) {
        try Sys.mknodat(dir, name, S_IFCHR | 0o000, 0)
    }

    static func isOpaque(_ dirFD: Int32) -> Bool {
        Sys.getxattrIfPresent(dirFD, opaqueXattr) == [UInt8(ascii: "y")]
    }

    static func setOpaque(_ dirFD: Int32) throws(FSError) {
        try Sys.setxattr(dirFD, opaqueXattr, [UInt8(ascii: "y")])
    }

    static func redirect(_ dirFD: Int32) -> [UInt8]? {
        Sys.getxattrIfPresent(dirFD, redirectXattr)
    }

    static func setRedirect(_ dirFD: Int32, _ lowerPath: [UInt8]) throws(FSError) {
        try Sys.setxattr(dirFD, redirectXattr, lowerPath)
    }

    static func removeRedirect(_ dirFD: Int32) {
        try? Sys.removexattr(.descriptor(dirFD), redirectXattr)
    }
}
