#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Reading the overlayfs upper format (`OverlayFormat`) by path, one entry at a time.
enum OverlayUpper {
    static func isOpaque(_ path: [UInt8]) throws -> Bool {
        try Xattrs.value(path, OverlayFormat.opaqueXattr) == OverlayFormat.opaqueValue
    }

    /// Where a renamed directory (or a metacopy file moved away) comes from in the lower:
    /// an absolute path from the root, or a name relative to the parent's lower directory.
    static func redirect(_ path: [UInt8]) throws -> [UInt8]? {
        guard let value = try Xattrs.value(path, OverlayFormat.redirectXattr), !value.isEmpty else { return nil }
        return value
    }

    /// A metacopy file holds only metadata; its data is still the lower file's.
    static func isMetacopy(_ path: [UInt8]) throws -> Bool {
        try Xattrs.value(path, OverlayFormat.metacopyXattr) != nil
    }

    /// The lower path (relative to the lower root) a redirect names, given the parent's.
    static func resolve(redirect: [UInt8], parentLower: [UInt8]?) -> [UInt8]? {
        if redirect.first == UInt8(ascii: "/") {
            return Array(redirect.drop { $0 == UInt8(ascii: "/") })
        }
        return parentLower.map { Paths.join($0, redirect) }
    }

    /// True when building the layer needs the lower image's content: a renamed directory
    /// (its children not copied up live only in the lower) or a metacopy file (its data does).
    static func needsLower(root: String) throws -> Bool {
        var pending: [[UInt8]] = [Array(root.utf8)]
        while let dir = pending.popLast() {
            for name in try Paths.list(dir) {
                let path = Paths.join(dir, name)
                let st = try Paths.lstatOrThrow(path)
                if Paths.isDirectory(st) {
                    if try redirect(path) != nil { return true }
                    pending.append(path)
                } else if (st.st_mode & S_IFMT) == S_IFREG, try isMetacopy(path) {
                    return true
                }
            }
        }
        return false
    }
}
