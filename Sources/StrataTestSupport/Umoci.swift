#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// umoci (0.4.7, Debian's) is the reference: a strata mount must show exactly the tree
/// `umoci unpack` extracts. It runs as root, so ownership and devices are real.
public enum Umoci {
    /// `UMOCI_BIN` when set, else umoci from the usual places.
    public static var path: String {
        if let value = getenv("UMOCI_BIN"), value.pointee != 0 { return String(cString: value) }
        return Mounts.tool("umoci")
    }

    public static var isAvailable: Bool { access(path, X_OK) == 0 }

    /// `umoci unpack --image LAYOUT:TAG BUNDLE`; returns the extracted tree, BUNDLE/rootfs.
    @discardableResult
    public static func unpack(layout: String, tag: String, into bundle: String) throws -> String {
        try Command.check(path, ["unpack", "--image", "\(layout):\(tag)", bundle], timeout: 600)
        return bundle + "/rootfs"
    }

    /// Removes an unpacked bundle (root-owned files, devices and all).
    public static func removeBundle(_ bundle: String) throws {
        try TempDirectory.remove(bundle)
    }

    // Image building, so tests can make reference images with the reference tool.

    /// `umoci init --layout LAYOUT`: an empty OCI layout.
    public static func initLayout(_ layout: String) throws {
        try Command.check(path, ["init", "--layout", layout])
    }

    /// `umoci new --image LAYOUT:TAG`: an image with no layers.
    public static func newImage(layout: String, tag: String) throws {
        try Command.check(path, ["new", "--image", "\(layout):\(tag)"])
    }

    /// `umoci repack --image LAYOUT:TAG BUNDLE`: a new layer from the changes to an
    /// unpacked bundle's rootfs (whiteouts included), tagged TAG.
    /// `extraArgs` e.g. ["--refresh-bundle"], to stack further layers from the same bundle.
    public static func repack(layout: String, tag: String, bundle: String, extraArgs: [String] = []) throws {
        try Command.check(path, ["repack"] + extraArgs + ["--image", "\(layout):\(tag)", bundle], timeout: 600)
    }

    /// `umoci config --image LAYOUT:TAG ARGS...`, e.g. ["--config.workingdir", "/"].
    public static func config(layout: String, tag: String, _ args: [String]) throws {
        try Command.check(path, ["config", "--image", "\(layout):\(tag)"] + args)
    }
}
