import Testing
import Glibc
@testable import StrataSystem

/// The directory-relative wrappers: one call each, errno as a SystemError naming the call and
/// the name, EINTR retried inside.
@Suite struct DirectoryCallTests {
    @Test func makeStatRenameLinkAndRemove() throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.fd
        try dir.makeDirectory(at: "d", mode: 0o750)
        #expect(try dir.stat(at: "d").st_mode & S_IFMT == S_IFDIR)
        #expect(try dir.statIfPresent(at: "missing") == nil)
        #expect(throws: SystemError(code: ENOENT, operation: "fstatat", path: "missing")) { _ = try dir.stat(at: "missing") }
        #expect(throws: SystemError(code: EEXIST, operation: "mkdirat", path: "d")) { try dir.makeDirectory(at: "d", mode: 0o700) }

        let f = try FileDescriptor.openat(dir, "f", O_WRONLY | O_CREAT | O_EXCL, mode: 0o600)
        try Array("abc".utf8).withUnsafeBytes { try f.writeAll($0, at: 0) }
        try f.truncate(2)
        f.close()
        try dir.makeSymlink(at: "l", target: "f")
        #expect(try dir.readLink(at: "l") == Array("f".utf8))
        #expect(try dir.stat(at: "l").st_mode & S_IFMT == S_IFLNK)
        #expect(try dir.stat(at: "l", flags: 0).st_size == 2)

        try dir.link(at: "f", to: dir, "g")
        #expect(try dir.stat(at: "g").st_nlink == 2)
        #expect(throws: SystemError(code: EEXIST, operation: "renameat2", path: "g")) {
            try dir.rename(at: "g", to: dir, "f", flags: LinuxCalls.renameNoReplace)
        }
        try dir.rename(at: "g", to: dir, "h")
        #expect(Set(try dir.entries().map { String(decoding: $0.name, as: UTF8.self) }) == ["d", "f", "l", "h"])

        let sub = try dir.pathDescriptor(at: "d")
        defer { sub.close() }
        #expect(try sub.statObject().st_mode & S_IFMT == S_IFDIR)
        try sub.makeNode(at: "fifo", mode: S_IFIFO | 0o600, device: 0)
        try sub.unlink(at: "fifo")
        try dir.unlink(at: "h")
        #expect(throws: SystemError(code: EISDIR, operation: "unlinkat", path: "d")) { try dir.unlink(at: "d") }
        try sub.makeDirectory(at: "e", mode: 0o700)
        try sub.makeSymlink(at: "e/up", target: "../..")
        try FileTree.remove(at: dir, FileDescriptor.cName(Array("d".utf8)), printable: "d")
        #expect(try dir.statIfPresent(at: "d") == nil)
        #expect(try dir.statIfPresent(at: "f") != nil)   // the symlink was removed, not followed
        try FileTree.remove(scratch.child("gone"))       // nothing there: nothing to do
    }

    @Test(.enabled(if: getuid() == 0 && FileIO.exists("/proc/self"), "mounting a tmpfs needs root"))
    func removalStopsAtAMountPoint() throws {
        let scratch = try ScratchDirectory()
        try FileIO.makeDirectories(scratch.child("a/m"))
        try FileIO.writeAtomically(scratch.child("a/m/keep"), [1])
        guard mount("tmpfs", scratch.child("a/m"), "tmpfs", 0, nil) == 0 else { throw SystemError(code: errno, operation: "mount") }
        defer { umount2(scratch.child("a/m"), Int32(MNT_DETACH)) }
        try FileIO.writeAtomically(scratch.child("a/m/inside"), [1])
        #expect(throws: FileTree.Failure.mountPoint(scratch.child("a/m"))) { try FileTree.remove(scratch.child("a")) }
        #expect(FileIO.exists(scratch.child("a/m/inside")))
    }

    @Test func modesAndTimesThroughPathDescriptors() throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.fd
        try FileDescriptor.openat(dir, "f", O_WRONLY | O_CREAT, mode: 0o600).close()
        try dir.changeMode(at: "f", mode: 0o640)
        #expect(try dir.stat(at: "f").st_mode & 0o7777 == 0o640)
        let f = try dir.pathDescriptor(at: "f")
        defer { f.close() }
        try f.changeMode(at: "", mode: 0o604, flags: LinuxCalls.atEmptyPath)
        #expect(try f.statObject().st_mode & 0o7777 == 0o604)
        try f.setTimes([timespec(tv_sec: 100, tv_nsec: 5), timespec(tv_sec: 200, tv_nsec: 7)])
        #expect(try f.statObject().st_mtim.tv_sec == 200)
        try dir.setTimes(at: "f", [timespec(tv_sec: 1, tv_nsec: 0), timespec(tv_sec: 2, tv_nsec: 0)])
        #expect(try dir.stat(at: "f").st_mtim.tv_sec == 2)
    }

    @Test func anExclusiveLockIsHeldUntilClosed() throws {
        let scratch = try ScratchDirectory()
        let first = try FileDescriptor.openLocked(scratch.child("lock"), O_RDWR | O_CREAT)
        let second = try FileDescriptor.openat(.currentDirectory, scratch.child("lock"), O_RDWR)
        defer { second.close() }
        #expect(throws: SystemError(code: EWOULDBLOCK, operation: "flock")) { try second.lock(LOCK_EX | LOCK_NB) }
        first.close()
        try second.lock(LOCK_EX | LOCK_NB)
        #expect(throws: SystemError(code: ENOENT, operation: "open", path: scratch.child("none/lock"))) {
            _ = try FileDescriptor.openLocked(scratch.child("none/lock"), O_RDWR | O_CREAT)
        }
    }

    @Test(.enabled(if: getuid() == 0, "trusted.* xattrs need root"))
    func extendedAttributesByEntryDescriptorAndPath() throws {
        let scratch = try ScratchDirectory()
        let dir = scratch.fd
        try dir.makeDirectory(at: "d", mode: 0o755)
        let name = FileDescriptor.cName(Array("d".utf8))
        try ExtendedAttributes.set(.entry(directory: dir, name: name), OverlayFormat.opaqueXattr, OverlayFormat.opaqueValue)
        let d = try dir.pathDescriptor(at: "d")
        defer { d.close() }
        #expect(try ExtendedAttributes.get(.descriptor(d), OverlayFormat.opaqueXattr) == OverlayFormat.opaqueValue)
        let path = FileDescriptor.cName(Array(scratch.child("d").utf8))
        #expect(try ExtendedAttributes.list(.path(path)) == [OverlayFormat.opaqueXattr])
        #expect(try ExtendedAttributes.get(.path(path), OverlayFormat.redirectXattr) == nil)
        #expect(throws: SystemError(code: ENODATA, operation: "getxattr", path: "d")) {
            _ = try ExtendedAttributes.get(.entry(directory: dir, name: name), OverlayFormat.redirectXattr, absentWhen: [])
        }
        try ExtendedAttributes.remove(.descriptor(d), OverlayFormat.opaqueXattr)
        #expect(try ExtendedAttributes.list(.descriptor(d)) == [])
    }

    @Test(.enabled(if: getuid() == 0, "a whiteout is a device node: needs root"))
    func aWhiteoutIsACharacterDeviceZeroZero() throws {
        let scratch = try ScratchDirectory()
        try scratch.fd.makeNode(at: "w", mode: OverlayFormat.whiteoutMode, device: OverlayFormat.whiteoutDevice)
        #expect(OverlayFormat.isWhiteout(try scratch.fd.stat(at: "w")))
        try scratch.fd.makeNode(at: "null", mode: S_IFCHR | 0o600, device: dev_t(DeviceNumber.make(major: 1, minor: 3)))
        #expect(!OverlayFormat.isWhiteout(try scratch.fd.stat(at: "null")))
        #expect(OverlayFormat.isPrivate("trusted.overlay.origin") && !OverlayFormat.isPrivate("trusted.other"))
    }
}
