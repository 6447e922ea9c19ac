#if canImport(Glibc)
import Glibc
#endif
import StrataFS
import StrataIndex
import StrataSystem
import StrataTestSupport
import StrataUpper

/// An `OverlayFileSystem` over a tiny image, without FUSE: the core called the way the adapter
/// calls it, by inode numbers and names. Everything lives in one TempDirectory.
final class OverlayHarness {
    let temp: TempDirectory
    let upper: String
    let lowerFS: ImageFileSystem
    let fs: OverlayFileSystem
    static let root: UInt64 = 1
    let context = RequestContext(uid: 0, gid: 0, pid: 0, umask: 0o022)

    /// The image: etc/hosts ("hello", user.k=v) with a hardlink etc/hosts2, a symlink etc/link,
    /// d/e/f, and an empty directory d/g.
    init() throws {
        temp = try TempDirectory(prefix: "strata-test-overlay-")
        let builder = try ImageBuilder(layout: temp.child("layout"))
        let layer = try builder.addLayer(entries: [
            Items.dir("etc"), Items.file("etc/hosts", "hello", xattrs: ["user.k": Array("v".utf8)]),
            Items.hardlink("etc/hosts2", to: "etc/hosts"), Items.symlink("etc/link", to: "hosts"),
            Items.dir("d"), Items.dir("d/e"), Items.file("d/e/f", "f"), Items.dir("d/g"),
        ], compression: .none)
        let blob = LayerBlob(path: builder.blobPath(layer.descriptor.digest), digestHex: layer.descriptor.digest.hex,
                             size: UInt64(layer.descriptor.size), compression: .none)
        lowerFS = try ImageView.open(layers: [blob], cache: try LayerCache(directory: temp.child("cache")))
        upper = temp.child("upper")
        fs = try OverlayFileSystem(lower: lowerFS, upper: upper, work: temp.child("work"))
    }

    static func withName<T>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        let bytes = Array(name.utf8)
        return try bytes.withUnsafeBytes { (raw) throws -> T in try body(raw) }
    }

    /// The attributes of `path` ("a/b"), looked up name by name from the root.
    func lookup(_ path: String) throws -> NodeAttributes {
        var current = try fs.getattr(inode: Self.root)
        for part in path.split(separator: "/") {
            let parent = current.inode
            current = try Self.withName(String(part)) { (n) throws in try fs.lookup(parent: parent, name: n) }
        }
        return current
    }

    /// The parent's inode and the last name of `path`.
    func split(_ path: String) throws -> (UInt64, String) {
        let parts = path.split(separator: "/").map(String.init)
        let parent = parts.count > 1 ? try lookup(parts.dropLast().joined(separator: "/")).inode : Self.root
        return (parent, parts.last!)
    }

    @discardableResult
    func create(_ path: String, _ content: String = "", mode: UInt32 = 0o644) throws -> NodeAttributes {
        let (parent, name) = try split(path)
        let made = try Self.withName(name) { (n) throws in
            try fs.create(parent: parent, name: n, mode: UInt32(S_IFREG) | mode, flags: O_WRONLY, context: context)
        }
        if !content.isEmpty { _ = try write(made.attributes.inode, made.handle, content) }
        fs.release(inode: made.attributes.inode, handle: made.handle)
        return made.attributes
    }

    func write(_ inode: UInt64, _ handle: UInt64, _ content: String, at offset: UInt64 = 0) throws -> Int {
        let bytes = Array(content.utf8)
        return try bytes.withUnsafeBytes { (raw) throws -> Int in
            try fs.write(inode: inode, handle: handle, offset: offset, data: raw)
        }
    }

    /// The whole content of `path`, read through a read-only handle.
    func read(_ path: String) throws -> String {
        let inode = try lookup(path).inode
        let handle = try fs.open(inode: inode, flags: O_RDONLY)
        defer { fs.release(inode: inode, handle: handle) }
        var out: [UInt8] = []
        try fs.read(inode: inode, handle: handle, offset: 0, size: 1 << 16) { out = Array($0) }
        return String(decoding: out, as: UTF8.self)
    }

    func names(_ path: String) throws -> [String] {
        let inode = path.isEmpty ? Self.root : try lookup(path).inode
        let handle = try fs.opendir(inode: inode)
        defer { fs.releasedir(inode: inode, handle: handle) }
        var names: [String] = []
        try fs.readdir(inode: inode, handle: handle, offset: 0, plus: false) { name, _, _ in
            names.append(String(decoding: name, as: UTF8.self)); return true
        }
        return names.filter { $0 != "." && $0 != ".." }.sorted()
    }

    func unlink(_ path: String) throws {
        let (parent, name) = try split(path)
        try Self.withName(name) { (n) throws in try fs.unlink(parent: parent, name: n) }
    }

    func mkdir(_ path: String) throws {
        let (parent, name) = try split(path)
        _ = try Self.withName(name) { (n) throws in try fs.mkdir(parent: parent, name: n, mode: 0o755, context: context) }
    }

    func rmdir(_ path: String) throws {
        let (parent, name) = try split(path)
        try Self.withName(name) { (n) throws in try fs.rmdir(parent: parent, name: n) }
    }

    func rename(_ from: String, _ to: String, flags: UInt32 = 0) throws {
        let (p, a) = try split(from), (np, b) = try split(to)
        try Self.withName(a) { (x) throws in
            try Self.withName(b) { (y) throws in try fs.rename(parent: p, name: x, newParent: np, newName: y, flags: flags) }
        }
    }

    /// The errno `body` fails with, or 0.
    static func errorCode(_ body: () throws -> Void) -> Int32 {
        do { try body(); return 0 } catch { return (error as? FSError)?.code ?? -1 }
    }

    /// Waits for the file system clock to tick, so a later change leaves a different ctime.
    static func tick() {
        var start = timespec(), now = timespec()
        clock_gettime(CLOCK_REALTIME_COARSE, &start)
        repeat { usleep(200); clock_gettime(CLOCK_REALTIME_COARSE, &now) } while now.tv_sec == start.tv_sec && now.tv_nsec == start.tv_nsec
    }
}
