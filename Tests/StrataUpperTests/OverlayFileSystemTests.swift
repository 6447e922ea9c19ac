#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataFS
import StrataSystem
import StrataUpper

/// The writable core without a mount: requests as the FUSE adapter makes them.
@Suite struct OverlayFileSystemTests {
    // Copy-up sets owners and trusted.* xattrs: those tests need root.

    @Test func createWriteAndReadANewFile() throws {
        let h = try OverlayHarness()
        let made = try h.create("etc/new", "abc", mode: 0o640)
        #expect(made.mode == UInt32(S_IFREG) | 0o640 & ~0o022)
        #expect(try h.read("etc/new") == "abc")
        #expect(try h.lookup("etc/new").size == 3)
        #expect(try FileIO.readAll(h.upper + "/etc/new") == Array("abc".utf8))
        #expect(try h.names("etc") == ["hosts", "hosts2", "link", "new"])
    }

    /// CREATE of a name that exists opens it unless O_EXCL was asked (as open(2) does): a
    /// CREATE the kernel sends again to a server that took the mount over, after the dead one
    /// had made the file, succeeds.
    @Test func createOfAnExistingNameOpensItWithoutExclusive() throws {
        let h = try OverlayHarness()
        let made = try h.create("etc/new", "abc")
        let (parent, _) = try h.split("etc/new")
        let again = try OverlayHarness.withName("new") { (n) throws in
            try h.fs.create(parent: parent, name: n, mode: UInt32(S_IFREG) | 0o600, flags: O_WRONLY | O_CREAT, context: h.context)
        }
        #expect(again.attributes.inode == made.inode)
        h.fs.release(inode: again.attributes.inode, handle: again.handle)
        #expect(try h.read("etc/new") == "abc")
        let truncating = try OverlayHarness.withName("new") { (n) throws in
            try h.fs.create(parent: parent, name: n, mode: UInt32(S_IFREG) | 0o600, flags: O_WRONLY | O_CREAT | O_TRUNC, context: h.context)
        }
        h.fs.release(inode: truncating.attributes.inode, handle: truncating.handle)
        #expect(try h.read("etc/new") == "")
        let exclusive = OverlayHarness.errorCode {
            _ = try OverlayHarness.withName("new") { (n) throws in
                try h.fs.create(parent: parent, name: n, mode: UInt32(S_IFREG) | 0o600, flags: O_WRONLY | O_CREAT | O_EXCL, context: h.context)
            }
        }
        #expect(exclusive == EEXIST)
    }

    @Test(.enabled(if: getuid() == 0, "whiteouts (mknod) and trusted.* xattrs need root")) func writingALowerFileCopiesItUpAndKeepsItsNumber() throws {
        let h = try OverlayHarness()
        let before = try h.lookup("etc/hosts")
        let handle = try h.fs.open(inode: before.inode, flags: O_RDWR)
        #expect(try h.write(before.inode, handle, "J") == 1)
        h.fs.release(inode: before.inode, handle: handle)
        #expect(try h.read("etc/hosts") == "Jello")
        #expect(try h.read("etc/hosts2") == "Jello", "a hardlink sees the write")
        #expect(try h.lookup("etc/hosts").inode == before.inode)
        #expect(try h.lookup("etc/hosts").nlink == 2)
        #expect(try h.fs.getxattr(inode: before.inode, name: "user.k") == Array("v".utf8))
        // The image is untouched.
        var lower: [UInt8] = []
        try h.lowerFS.read(inode: before.inode, handle: 0, offset: 0, size: 100) { lower = Array($0) }
        #expect(lower == Array("hello".utf8))
    }

    @Test(.enabled(if: getuid() == 0, "whiteouts (mknod) and trusted.* xattrs need root")) func aFileCreatedWhereALowerFileWasIsANewFile() throws {
        let h = try OverlayHarness()
        let old = try h.lookup("d/e/f")
        try h.rename("d/e/f", "d/e/moved")
        let new = try h.create("d/e/f", "second")
        #expect(new.inode != old.inode)
        #expect(try h.read("d/e/f") == "second")
        #expect(try h.read("d/e/moved") == "f")
        #expect(try h.lookup("d/e/moved").inode == old.inode)

        // Deleted (a whiteout, never copied up), then made again: also a new file.
        let g = try h.lookup("etc/link")
        try h.unlink("etc/link")
        #expect(try h.create("etc/link", "file").inode != g.inode)
        #expect(try h.read("etc/link") == "file")
    }

    @Test func aRemovedNodesNumberIsNotGivenToANewFile() throws {
        let h = try OverlayHarness()
        // The kernel still holds the first file (its lookup is not forgotten): ext4 reuses the
        // upper inode number for the second one at once, strata must not reuse the node number.
        let first = try h.create("a", "1")
        try h.unlink("a")
        let second = try h.create("b", "2")
        #expect(second.inode != first.inode)
        #expect(try h.fs.getattr(inode: first.inode).nlink == 0)
        #expect(try h.read("b") == "2")
        try h.mkdir("dir1")
        let dir1 = try h.lookup("dir1")
        try h.rmdir("dir1")
        try h.mkdir("dir2")
        #expect(try h.lookup("dir2").inode != dir1.inode)
    }

    @Test(.enabled(if: getuid() == 0, "whiteouts (mknod) and trusted.* xattrs need root")) func unlinkAndRmdirOfLowerEntriesLeaveWhiteouts() throws {
        let h = try OverlayHarness()
        try h.unlink("d/e/f")
        #expect(HarnessCodes.lookup(h, "d/e/f") == ENOENT)
        var st = stat()
        #expect(lstat(h.upper + "/d/e/f", &st) == 0 && st.st_mode & S_IFMT == S_IFCHR && st.st_rdev == 0)
        #expect(OverlayHarness.errorCode { try h.rmdir("d") } == ENOTEMPTY)
        try h.rmdir("d/e")
        try h.rmdir("d/g")
        #expect(try h.names("d") == [])
        try h.rmdir("d")
        #expect(try h.names("") == ["etc"])
        try h.mkdir("d")
        #expect(try h.names("d") == [], "a directory made over a removed one is opaque")
    }

    @Test(.enabled(if: getuid() == 0, "whiteouts (mknod) and trusted.* xattrs need root")) func mergedDirectoriesCountTheirSubdirectories() throws {
        let h = try OverlayHarness()
        #expect(try h.lookup("d").nlink == 4)   // ., .., e, g
        try h.mkdir("d/x")
        #expect(try h.lookup("d").nlink == 5)
        try h.rmdir("d/g")
        #expect(try h.lookup("d").nlink == 4)
        try h.rename("d/e", "e")
        #expect(try h.lookup("d").nlink == 3)
        #expect(try h.lookup("").nlink == 5)     // ., .., etc, d, e
    }

    @Test(.enabled(if: getuid() == 0, "whiteouts (mknod) and trusted.* xattrs need root")) func copyUpDoesNotChangeTheCtime() throws {
        let h = try OverlayHarness()
        let file = try h.lookup("d/e/f"), parent = try h.lookup("d/e"), top = try h.lookup("d")
        OverlayHarness.tick()
        let handle = try h.fs.open(inode: file.inode, flags: O_RDWR)   // copies up, changes nothing
        h.fs.release(inode: file.inode, handle: handle)
        #expect(try h.lookup("d/e/f").ctime == file.ctime)
        #expect(try h.lookup("d/e").ctime == parent.ctime)
        #expect(try h.lookup("d").ctime == top.ctime)
        // A real change shows.
        OverlayHarness.tick()
        _ = try h.fs.setattr(inode: file.inode, handle: nil, changes: AttributeChanges(mode: 0o600), context: h.context)
        #expect(try h.lookup("d/e/f").ctime != file.ctime)
    }

    @Test func aSetattrThatChangesNothingChangesTheCtime() throws {
        let h = try OverlayHarness()
        let made = try h.create("a", "x", mode: 0o4755)
        OverlayHarness.tick()
        let after = try h.fs.setattr(inode: made.inode, handle: nil, changes: AttributeChanges(), context: h.context)
        #expect(after.ctime != made.ctime)
        #expect(after.mode == UInt32(S_IFREG) | 0o4755, "chown(-1, -1) by root keeps the set-id bits the kernel did not clear")
    }

    @Test func renameFlags() throws {
        let h = try OverlayHarness()
        try h.create("a", "A")
        try h.create("b", "B")
        #expect(OverlayHarness.errorCode { try h.rename("a", "b", flags: 1) } == EEXIST)
        #expect(OverlayHarness.errorCode { try h.rename("a", "b", flags: 4) } == EINVAL, "RENAME_WHITEOUT is refused")
        #expect(OverlayHarness.errorCode { try h.rename("a", "missing", flags: 2) } == ENOENT)
        try h.rename("a", "b", flags: 2)
        #expect(try h.read("a") == "B" && h.read("b") == "A")
        try h.rename("a", "b")
        #expect(try h.names("") == ["b", "d", "etc"])
    }

    @Test func namesLongerThan255BytesAreRefused() throws {
        let h = try OverlayHarness()
        let long = String(repeating: "x", count: 256)
        #expect(OverlayHarness.errorCode { try h.create(long) } == ENAMETOOLONG)
        #expect(HarnessCodes.lookup(h, long) == ENAMETOOLONG)
        try h.create(String(repeating: "y", count: 255))
    }
}

enum HarnessCodes {
    static func lookup(_ h: OverlayHarness, _ path: String) -> Int32 {
        OverlayHarness.errorCode { _ = try h.lookup(path) }
    }
}
