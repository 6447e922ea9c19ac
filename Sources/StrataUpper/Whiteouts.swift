import StrataFS
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Writing and reading the overlayfs upper format (`OverlayFormat`) by descriptor.
enum Overlay {
    static func makeWhiteout(_ dir: Int32, _ name: [CChar]) throws(FSError) {
        try Sys.mknodat(dir, name, OverlayFormat.whiteoutMode, OverlayFormat.whiteoutDevice)
    }

    static func isOpaque(_ dirFD: Int32) -> Bool {
        Sys.getxattrIfPresent(dirFD, OverlayFormat.opaqueXattr) == OverlayFormat.opaqueValue
    }

    static func setOpaque(_ dirFD: Int32) throws(FSError) {
        try Sys.setxattr(dirFD, OverlayFormat.opaqueXattr, OverlayFormat.opaqueValue)
    }

    static func redirect(_ dirFD: Int32) -> [UInt8]? {
        Sys.getxattrIfPresent(dirFD, OverlayFormat.redirectXattr)
    }

    static func setRedirect(_ dirFD: Int32, _ lowerPath: [UInt8]) throws(FSError) {
        try Sys.setxattr(dirFD, OverlayFormat.redirectXattr, lowerPath)
    }

    static func removeRedirect(_ dirFD: Int32) {
        try? Sys.removexattr(.descriptor(dirFD), OverlayFormat.redirectXattr)
    }
}
