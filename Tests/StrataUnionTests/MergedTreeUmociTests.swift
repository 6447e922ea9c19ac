#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataIndex
import StrataOCI
import StrataSystem
import StrataTestSupport
@testable import StrataUnion

/// The merged tree checked against a reference that is not code under test: `umoci unpack`
/// of the same layers (MergedTreeTests compares it with UnionTree, which builds it). Every
/// path, type, permission, owner, size, link count, link target, device number, file mtime
/// and xattr must agree. Directory mtimes are left out (umoci stamps the directories it
/// makes implicitly with the time of the unpack).
@Suite(.enabled(if: getuid() == 0 && Umoci.isAvailable, "umoci unpack restores owners and devices: needs root and umoci"))
struct MergedTreeUmociTests {
    static let layers: [[TarItem]] = [
        [Items.dir("etc"), Items.file("etc/passwd", String(repeating: "p", count: 100)),
         Items.file("etc/shadow", "s", mode: 0o600), Items.dir("bin"),
         Items.file("bin/sh", String(repeating: "x", count: 300), mode: 0o755, xattrs: ["user.x": Array("v".utf8)]),
         Items.hardlink("bin/bash", to: "bin/sh"),
         Items.charDevice("dev/null", major: 1, minor: 3), Items.blockDevice("dev/sda", major: 8, minor: 1),
         Items.fifo("run/fifo"), Items.dir("old", mode: 0o750, uid: 3, gid: 4), Items.file("old/gone", "g"),
         Items.dir("old/sub"), Items.file("old/sub/deep", "d"),
         Items.symlink("lib", to: "usr/lib"), Items.file("usr/lib/libc.so", "libc", mode: 0o755),
         Items.file("tmp-setuid", "su", mode: 0o4755), Items.dir("sticky", mode: 0o1777)],
        [Items.opaque("old"), Items.file("old/new", "nn"),
         Items.whiteout("etc/shadow"), Items.file("etc/passwd", "new", mode: 0o640, uid: 7, gid: 8),
         Items.whiteout("bin/bash"), Items.file("bin/ls", "ls", mode: 0o755), Items.hardlink("bin/dir", to: "bin/ls"),
         Items.symlink("usr/lib/libc.so.6", to: "libc.so"), Items.whiteout("lib"), Items.dir("lib", mode: 0o700)],
    ]

    @Test func mergedTreeMatchesUmociUnpack() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        for items in Self.layers { try builder.addLayer(entries: items) }
        try builder.write(tag: "t")
        let rootfs = try Umoci.unpack(layout: builder.layout, tag: "t", into: temp.child("bundle"))
        let expected = try TreeSnapshot.capture(root: rootfs, hashContents: false)

        let cache = try LayerCache(directory: temp.child("cache"))
        let indexes = try builder.layers.map { layer in
            try cache.index(LayerBlob(path: builder.blobPath(layer.descriptor.digest), descriptor: layer.descriptor, format: .gzip)).index
        }
        let treePath = temp.child("tree")
        try FileIO.writeAtomically(treePath, MergedTreeWriter.serialize(try UnionTree(layers: indexes)))
        let merged = try MergedTree(path: treePath, layers: MergedTreeWriter.layerTable(indexes))

        let fromUmoci = expected.entries.values.filter { $0.pathString != "." }.map(Self.describe).sorted()
        let fromTree = Self.describe(merged).sorted()
        let missing = Set(fromUmoci).subtracting(fromTree).sorted()
        let extra = Set(fromTree).subtracting(fromUmoci).sorted()
        #expect(missing.isEmpty && extra.isEmpty,
                "umoci only:\n\(missing.joined(separator: "\n"))\nmerged tree only:\n\(extra.joined(separator: "\n"))")
        // The rules the layers exercise, so an empty comparison cannot pass by accident.
        #expect(fromTree.count == fromUmoci.count && fromTree.count > 15)
        #expect(expected.entry("old/new") != nil && expected.entry("old/gone") == nil && expected.entry("etc/shadow") == nil)
    }

    /// One line per entry with every compared field.
    static func describe(_ e: TreeSnapshot.Entry) -> String {
        let isDir = e.type == .directory
        let link = e.linkTarget.map { String(decoding: $0, as: UTF8.self) } ?? "-"
        let rdev = e.type == .charDevice || e.type == .blockDevice ? String(e.rdev ?? 0) : "-"
        let xattrs = e.xattrs.map { String(decoding: $0.name, as: UTF8.self) + "=" + String(decoding: $0.value, as: UTF8.self) }
            .sorted().joined(separator: ",")
        return [e.pathString, e.type.rawValue, String(e.mode & 0o7777, radix: 8), "\(e.uid):\(e.gid)",
                e.type == .regular ? String(e.size) : "-", "nlink \(e.nlink)", link, rdev,
                isDir ? "-" : String(e.mtimeSeconds), xattrs].joined(separator: " ")
    }

    /// The same line for every entry of the merged tree, walked from the root.
    static func describe(_ tree: MergedTree) -> [String] {
        var lines: [String] = []
        var work: [(String, UInt32)] = tree.children(of: 0).map { (String(decoding: $0.name, as: UTF8.self), $0.inode) }
        while let (path, inode) = work.popLast() {
            let st = tree.stat(inode)
            let type = entryType(st.mode)
            if type == .directory {
                work += tree.children(of: inode).map { (path + "/" + String(decoding: $0.name, as: UTF8.self), $0.inode) }
            }
            let link = tree.symlinkTarget(inode).map { String(decoding: $0, as: UTF8.self) } ?? "-"
            let rdev = type == .charDevice || type == .blockDevice ? String(st.rdev) : "-"
            let xattrs = (0..<tree.xattrCount(inode)).map { i -> String in
                let x = tree.xattr(inode, i)
                return String(decoding: x.name, as: UTF8.self) + "=" + String(decoding: x.value, as: UTF8.self)
            }.sorted().joined(separator: ",")
            lines.append([path, type.rawValue, String(st.mode & 0o7777, radix: 8), "\(st.uid):\(st.gid)",
                          type == .regular ? String(st.size) : "-", "nlink \(st.nlink)", link, rdev,
                          type == .directory ? "-" : String(st.mtimeSeconds), xattrs].joined(separator: " "))
        }
        return lines
    }

    static func entryType(_ mode: UInt32) -> TreeSnapshot.EntryType {
        switch mode & UInt32(S_IFMT) {
        case UInt32(S_IFREG): .regular
        case UInt32(S_IFDIR): .directory
        case UInt32(S_IFLNK): .symlink
        case UInt32(S_IFIFO): .fifo
        case UInt32(S_IFSOCK): .socket
        case UInt32(S_IFCHR): .charDevice
        case UInt32(S_IFBLK): .blockDevice
        default: .unknown
        }
    }
}
