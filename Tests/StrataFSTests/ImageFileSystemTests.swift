#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataFS
import StrataTestSupport

/// The read-only core without a mount: what the adapter asks of it, answered from an image built
/// in code (see `ImageHarness`).
@Suite struct ImageFileSystemTests {
    @Test func lookupAndGetattrAnswerFromTheMergedTree() throws {
        let h = try ImageHarness()
        let etc = try h.lookup("etc")
        #expect(etc.mode & UInt32(S_IFMT) == UInt32(S_IFDIR))
        let hosts = try h.lookup("etc/hosts")
        #expect(hosts.mode == UInt32(S_IFREG) | 0o644)
        #expect(hosts.size == 5)
        #expect(hosts.mtime.seconds == Items.mtime)
        #expect(hosts.nlink == 2)
        #expect(try h.lookup("etc/hosts2").inode == hosts.inode)
        #expect(try h.fs.getattr(inode: hosts.inode).size == 5)
        // The upper layer's file wins, with its own mode.
        let x = try h.lookup("d/x")
        #expect(x.mode == UInt32(S_IFREG) | 0o600)
        #expect(x.size == 5)
        #expect(try h.lookup("big").size == UInt64(ImageHarness.big.count))
    }

    @Test func lookupFailuresCarryTheirErrno() throws {
        let h = try ImageHarness()
        #expect(CoreCalls.errorCode { _ = try h.lookup("etc/missing") } == ENOENT)
        #expect(CoreCalls.errorCode { _ = try h.lookup("d/gone") } == ENOENT)   // whited out above
        #expect(CoreCalls.errorCode { _ = try h.lookup("etc/hosts/x") } == ENOTDIR)
        #expect(CoreCalls.errorCode { _ = try h.fs.getattr(inode: 0) } == ESTALE)
        #expect(CoreCalls.errorCode { _ = try h.fs.getattr(inode: 1 << 40) } == ESTALE)
    }

    @Test func readdirListsTheUnionAndResumesAtAnOffset() throws {
        let h = try ImageHarness()
        let root = try h.entries("")
        #expect(root.map(\.name).sorted() == [".", "..", "big", "d", "etc"])
        #expect(root.first?.inode == CoreCalls.root)
        let d = try h.entries("d")
        #expect(d.map(\.name).sorted() == [".", "..", "new", "x"])
        #expect(try d.first { $0.name == "x" }?.inode == h.lookup("d/x").inode)
        #expect(d.first { $0.name == ".." }?.inode == CoreCalls.root)
        // Stopped after two entries, the listing goes on from the offset the last one gave.
        let firstTwo = try h.entries("etc", limit: 2)
        let rest = try h.entries("etc", from: try #require(firstTwo.last).next)
        #expect((firstTwo + rest).map(\.name) == (try h.entries("etc")).map(\.name))
        #expect((firstTwo + rest).map(\.name).sorted() == [".", "..", "hosts", "hosts2", "link"])
        #expect(CoreCalls.errorCode { _ = try h.fs.opendir(inode: try h.lookup("etc/hosts").inode) } == ENOTDIR)
    }

    @Test func readReturnsTheTopLayersBytes() throws {
        let h = try ImageHarness()
        #expect(try h.read("etc/hosts") == Array("hello".utf8))
        #expect(try h.read("etc/hosts2") == Array("hello".utf8))
        #expect(try h.read("d/x") == Array("upper".utf8))
        #expect(try h.read("d/new") == Array("new".utf8))
        #expect(try h.read("etc/hosts", offset: 1, count: 3) == Array("ell".utf8))
        #expect(try h.read("etc/hosts", offset: 5).isEmpty)
        #expect(try h.read("etc/hosts", offset: 100).isEmpty)
    }

    @Test func readsOfALargeFileMatchItsContentAcrossSpans() throws {
        let h = try ImageHarness()
        let big = ImageHarness.big
        for offset in [0, 4 << 20 - 100, 8 << 20 + 5, big.count - 10] {
            let count = 64 << 10
            let expected = Array(big[offset..<min(offset + count, big.count)])
            #expect(try h.read("big", offset: UInt64(offset), count: count) == expected, "at \(offset)")
        }
        var whole: [UInt8] = []
        while whole.count < big.count {
            whole += try h.read("big", offset: UInt64(whole.count), count: 1 << 20)
        }
        #expect(whole == big)
    }

    @Test func openIsReadOnly() throws {
        let h = try ImageHarness()
        let hosts = try h.lookup("etc/hosts").inode
        #expect(CoreCalls.errorCode { _ = try h.fs.open(inode: hosts, flags: O_WRONLY) } == EROFS)
        #expect(CoreCalls.errorCode { _ = try h.fs.open(inode: hosts, flags: O_RDONLY | O_TRUNC) } == EROFS)
        #expect(CoreCalls.errorCode { _ = try h.fs.open(inode: try h.lookup("etc").inode, flags: O_RDONLY) } == EISDIR)
    }

    @Test func readlinkGivesTheTarget() throws {
        let h = try ImageHarness()
        let link = try h.lookup("etc/link")
        #expect(link.mode & UInt32(S_IFMT) == UInt32(S_IFLNK))
        #expect(try h.fs.readlink(inode: link.inode) == Array("hosts".utf8))
        #expect(CoreCalls.errorCode { _ = try h.fs.readlink(inode: try h.lookup("etc/hosts").inode) } == EINVAL)
    }

    @Test func xattrsAreListedAndRead() throws {
        let h = try ImageHarness()
        let hosts = try h.lookup("etc/hosts").inode
        #expect(try h.fs.listxattr(inode: hosts) == ["user.k"])
        #expect(try h.fs.getxattr(inode: hosts, name: "user.k") == Array("v".utf8))
        #expect(CoreCalls.errorCode { _ = try h.fs.getxattr(inode: hosts, name: "user.other") } == ENODATA)
        #expect(try h.fs.listxattr(inode: try h.lookup("d/x").inode).isEmpty)
    }

    @Test func statfsCountsTheImage() throws {
        let h = try ImageHarness()
        let s = try h.fs.statfs(inode: CoreCalls.root)
        #expect(s.files == UInt64(h.fs.tree.inodeCount))
        #expect(s.blocksFree == 0)
        #expect(s.blocks * s.blockSize >= UInt64(ImageHarness.big.count))
        #expect(s.nameMax == 255)
    }
}
