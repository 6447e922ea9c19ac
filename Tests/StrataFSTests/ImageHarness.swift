#if canImport(Glibc)
import Glibc
#endif
import StrataFS
import StrataTestSupport

/// An `ImageFileSystem` over a two-layer gzip image built in code, without FUSE: the core
/// called the way the adapter calls it, by inode numbers and names.
///
/// Lower layer: etc/ (hosts "hello" with user.k=v, a hardlink hosts2, a symlink link → hosts),
/// d/ (x "lower", gone "bye"), big (several spans of data). Upper layer: d/x "upper", a
/// whiteout of d/gone, d/new "new".
final class ImageHarness {
    let temp: TempDirectory
    let fs: ImageFileSystem
    static let big = Items.pseudoRandom(count: 9 << 20)

    init() throws {
        temp = try TempDirectory(prefix: "strata-test-image-")
        let lowerLayer = [
            Items.dir("etc"), Items.file("etc/hosts", "hello", xattrs: ["user.k": Array("v".utf8)]),
            Items.hardlink("etc/hosts2", to: "etc/hosts"), Items.symlink("etc/link", to: "hosts"),
            Items.dir("d"), Items.file("d/x", "lower"), Items.file("d/gone", "bye"),
            Items.file(Array("big".utf8), Self.big),
        ]
        let upperLayer = [
            Items.dir("d"), Items.file("d/x", "upper", mode: 0o600), Items.whiteout("d/gone"), Items.file("d/new", "new"),
        ]
        fs = try CoreCalls.open(layers: [lowerLayer, upperLayer], compression: .gzip, in: temp.path)
    }

    /// The attributes of `path` ("a/b"), looked up name by name from the root.
    func lookup(_ path: String) throws -> NodeAttributes { try CoreCalls.lookup(fs, path) }

    /// `count` bytes of `path` from `offset`, through an open handle.
    func read(_ path: String, offset: UInt64 = 0, count: Int = 1 << 16) throws -> [UInt8] {
        let inode = try lookup(path).inode
        let handle = try fs.open(inode: inode, flags: O_RDONLY)
        defer { fs.release(inode: inode, handle: handle) }
        var out: [UInt8] = []
        try fs.read(inode: inode, handle: handle, offset: offset, size: count) { out = Array($0) }
        return out
    }

    /// The entries of directory `path` from `offset`: (name, inode, next offset), at most `limit`.
    func entries(_ path: String, from offset: UInt64 = 0, limit: Int = .max) throws -> [(name: String, inode: UInt64, next: UInt64)] {
        let inode = try lookup(path).inode
        let handle = try fs.opendir(inode: inode)
        defer { fs.releasedir(inode: inode, handle: handle) }
        var out: [(name: String, inode: UInt64, next: UInt64)] = []
        try fs.readdir(inode: inode, handle: handle, offset: offset, plus: false) { name, attributes, next in
            if out.count == limit { return false }
            out.append((String(decoding: name, as: UTF8.self), attributes.inode, next))
            return true
        }
        return out
    }
}
