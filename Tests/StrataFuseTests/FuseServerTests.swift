#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import StrataFuse
import StrataFS
import StrataSystem

@Suite("FUSE adapter against an in-memory tree", .timeLimit(.minutes(10)))
struct FuseServerTests {
    @Test("attributes, directories, reads, links, xattrs, statfs through the kernel")
    func servesTree() throws {
        let fileSystem = MemoryFileSystem()
        let mount = try MountedServer(fileSystem)
        defer { mount.stop() }
        try mount.waitReady()
        #expect(FuseMount.isMounted(mount.path))
        #expect(mountInfo().contains { $0.mountpoint == mount.path && $0.fsType == "fuse.strata" })

        // stat / lstat
        var st = stat()
        #expect(stat(mount.file("hello.txt"), &st) == 0)
        #expect(st.st_mode == S_IFREG | 0o644)
        #expect(st.st_uid == 1000 && st.st_gid == 1001)
        #expect(st.st_nlink == 1)
        #expect(st.st_size == 15)
        #expect(st.st_ino == 2)
        #expect(st.st_mtim.tv_sec == 1_700_000_000 && st.st_mtim.tv_nsec == 123_456_789)
        #expect(lstat(mount.file("link"), &st) == 0)
        #expect(st.st_mode & S_IFMT == S_IFLNK)
        #expect(stat(mount.file("link"), &st) == 0)
        #expect(st.st_ino == 2)
        #expect(stat(mount.path, &st) == 0)
        #expect(st.st_mode == S_IFDIR | 0o755 && st.st_nlink == 3)

        // readlink
        var target = [CChar](repeating: 0, count: 256)
        let length = readlink(mount.file("link"), &target, target.count)
        #expect(length == 9)
        #expect(String(decoding: target.prefix(max(length, 0)).map { UInt8(bitPattern: $0) }, as: UTF8.self) == "hello.txt")

        // missing names: ENOENT, also the second time (answered from the negative entry)
        for _ in 0..<2 {
            errno = 0
            #expect(stat(mount.file("missing"), &st) == -1)
            #expect(errno == ENOENT)
        }

        // big directory (READDIRPLUS, several reply buffers)
        let names = try listDirectory(mount.file("big"))
        #expect(names.count == MemoryFileSystem.bigCount + 2)
        #expect(Set(names).count == names.count)
        #expect(names.contains(".") && names.contains(".."))
        #expect(names.contains("entry-0000") && names.contains("entry-0999"))
        #expect(stat(mount.file("big/entry-0777"), &st) == 0)
        #expect(st.st_size == 777 && st.st_mode == S_IFREG | 0o600)
        #expect(fileSystem.readdirCalls.withLock { $0.plus > 1 && $0.plain == 0 })
        #expect(try listDirectory(mount.path).sorted() == [".", "..", "big", "blob", "hello.txt", "link", "xattrs"])

        do {
            // reads at odd offsets, across request boundaries, and at end of file
            let fd = open(mount.file("blob"), O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            let size = MemoryFileSystem.blobSize
            for (offset, count) in [(0, 1), (1, 4095), (4095, 3), (131_071, 300_001), ((1 << 20) + 3, 1 << 20),
                                    (size - 5, 100), (size, 10), (777_777, 1)] {
                var buffer = [UInt8](repeating: 0xEE, count: count)
                let got = pread(fd, &buffer, count, off_t(offset))
                let expected = max(0, min(count, size - offset))
                #expect(got == expected, "pread(\(offset), \(count))")
                let pattern = (0..<expected).map { MemoryFileSystem.blobByte(offset + $0) }
                #expect(Array(buffer.prefix(max(got, 0))) == pattern, "bytes at \(offset)")
            }
            var whole = [UInt8](repeating: 0, count: size)
            var done = 0
            while done < size {
                let got = whole.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, size - done, off_t(done)) }
                if got <= 0 { break }
                done += got
            }
            #expect(done == size)
            #expect(whole == (0..<size).map(MemoryFileSystem.blobByte))
            // max_read and read-ahead let requests grow beyond the kernel's default 128 KiB.
            #expect(fileSystem.largestRead.withLock { $0 } > 128 * 1024)
        }

        // opening for writing is refused on a read-only tree
        errno = 0
        #expect(open(mount.file("hello.txt"), O_WRONLY) == -1)
        #expect(errno == EROFS)

        // xattrs: size probes, ERANGE, values, the list
        let xattrs = mount.file("xattrs")
        #expect(getxattr(xattrs, "user.comment", nil, 0) == 6)
        var small = [UInt8](repeating: 0, count: 2)
        errno = 0
        #expect(getxattr(xattrs, "user.comment", &small, 2) == -1)
        #expect(errno == ERANGE)
        var value = [UInt8](repeating: 0, count: 64)
        let valueLength = getxattr(xattrs, "user.comment", &value, value.count)
        #expect(Array(value.prefix(max(valueLength, 0))) == Array("strata".utf8))
        #expect(getxattr(xattrs, "security.capability", nil, 0) == MemoryFileSystem.capability.count)
        let capabilityLength = getxattr(xattrs, "security.capability", &value, value.count)
        #expect(Array(value.prefix(max(capabilityLength, 0))) == MemoryFileSystem.capability)
        errno = 0
        #expect(getxattr(xattrs, "user.absent", &value, value.count) == -1)
        #expect(errno == ENODATA)
        let listSize = listxattr(xattrs, nil, 0)
        #expect(listSize == "user.comment\0security.capability\0".utf8.count)
        var list = [CChar](repeating: 0, count: 256)
        errno = 0
        #expect(listxattr(xattrs, &list, 4) == -1)
        #expect(errno == ERANGE)
        let listLength = listxattr(xattrs, &list, list.count)
        let listed = list.prefix(max(listLength, 0)).split(separator: 0)
            .map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        #expect(listed == ["user.comment", "security.capability"])

        // statfs
        var sv = statvfs()
        #expect(statvfs(mount.path, &sv) == 0)
        #expect(sv.f_blocks == 12345 && sv.f_bsize == 4096 && sv.f_namemax == 255)

        // Clean shutdown: run returns without error, nothing stays mounted.
        let error = mount.stop()
        #expect(error == nil, "\(String(describing: error))")
        #expect(!FuseMount.isMounted(mount.path))
        #expect(!mountInfo().contains { $0.mountpoint == mount.path })
        // The kernel never forgot more than was looked up (dot entries of READDIRPLUS included).
        #expect(fileSystem.lookups.withLock { $0.values.allSatisfy { $0 >= 0 } })
    }

    /// What `find -printf '%s %m'` does: list, then stat every entry. The READDIRPLUS replies
    /// (written by the single-threaded loop itself) must carry every entry's attributes, so
    /// that the stats need no LOOKUP.
    @Test("a listing answers the stats of its entries (no LOOKUP after READDIRPLUS)")
    func walkNeedsNoLookups() throws {
        let fileSystem = MemoryFileSystem()
        let mount = try MountedServer(fileSystem)
        defer { mount.stop() }
        try mount.waitReady()
        let names = try listDirectory(mount.file("big")).filter { $0 != "." && $0 != ".." }
        #expect(names.count == MemoryFileSystem.bigCount)
        let lookupsBefore = fileSystem.lookupCalls.withLock { $0 }
        var st = stat()
        for name in names {
            guard lstat(mount.file("big/" + name), &st) == 0 else {
                Issue.record("lstat \(name): errno \(errno)")
                continue
            }
            let index = Int(name.dropFirst("entry-".count))!
            #expect(st.st_ino == 1000 + UInt(index) && st.st_size == index && st.st_mode == S_IFREG | 0o600)
            #expect(st.st_uid == 1000 && st.st_gid == 1001 && st.st_nlink == 1)
            #expect(st.st_mtim.tv_sec == 1_700_000_000 && st.st_mtim.tv_nsec == 123_456_789)
        }
        #expect(fileSystem.lookupCalls.withLock { $0 } == lookupsBefore)
        #expect(mount.stop() == nil)
        #expect(fileSystem.lookups.withLock { $0.values.allSatisfy { $0 >= 0 } })
    }

    @Test("plain READDIR, ENOENT without negative caching, stop() unmounts")
    func plainReaddirAndStop() throws {
        var options = FuseMountOptions()
        options.readdirPlus = false
        options.negativeTimeout = 0
        options.fsName = "strata:test,image"   // the comma must be escaped for fuse_opt
        let fileSystem = MemoryFileSystem()
        let mount = try MountedServer(fileSystem, options: options)
        defer { mount.stop() }
        try mount.waitReady()
        #expect(mountInfo().contains { $0.mountpoint == mount.path && $0.source == "strata:test,image" })
        let names = try listDirectory(mount.file("big"))
        #expect(names.count == MemoryFileSystem.bigCount + 2)
        #expect(fileSystem.readdirCalls.withLock { $0.plain > 1 && $0.plus == 0 })
        var st = stat()
        errno = 0
        #expect(stat(mount.file("nothing-here"), &st) == -1)
        #expect(errno == ENOENT)
        #expect(mountInfo().contains { $0.mountpoint == mount.path && $0.options.contains("ro") })

        // A file still open: stop() must not wait for it; the connection is aborted.
        let fd = open(mount.file("hello.txt"), O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        #expect(mount.stop() == nil)
        #expect(!FuseMount.isMounted(mount.path))
        var byte: UInt8 = 0
        errno = 0
        #expect(pread(fd, &byte, 1, 0) == -1)
        #expect(errno == ENOTCONN)
    }

    @Test("an unmount from outside (strata unmount) ends run cleanly")
    func externalUnmount() throws {
        let mount = try MountedServer(MemoryFileSystem())
        defer { mount.stop() }
        try mount.waitReady()
        try FuseMount.unmount(mount.path)
        #expect(!FuseMount.isMounted(mount.path))
        #expect(mount.stop() == nil)
        #expect(throws: FuseError(.notMounted, mountpoint: mount.path)) { try FuseMount.unmount(mount.path) }
    }

    @Test("stop() before the mount answers still unmounts and returns")
    func stopEarly() throws {
        let mount = try MountedServer(MemoryFileSystem())
        defer { mount.stop() }
        mount.server.stop()
        #expect(mount.stop() == nil)
        #expect(!FuseMount.isMounted(mount.path))
    }

    @Test("a missing mountpoint or a file is a one-line error naming it")
    func badMountpoints() throws {
        let dir = try makeTestDirectory("strata-fuse-bad-")
        defer { rmdir(dir) }
        // run() must fail at once; if it mounted instead it would serve forever, so it runs
        // under runExpectingPromptReturn, which stops it and fails the test after a while.
        let missing = dir + "/does-not-exist"
        #expect(throws: FuseError(.mountpointMissing, mountpoint: missing)) {
            let server = try FuseServer(fileSystem: MemoryFileSystem(), mountpoint: missing, options: FuseMountOptions())
            if let error = runExpectingPromptReturn(server, mountpoint: missing) { throw error }
        }
        let file = dir + "/file"
        close(open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
        defer { unlink(file) }
        do {
            let server = try FuseServer(fileSystem: MemoryFileSystem(), mountpoint: file, options: FuseMountOptions())
            if let error = runExpectingPromptReturn(server, mountpoint: file) { throw error }
            Issue.record("mounted on a file")
        } catch let error as FuseError {
            #expect(error.kind == .notADirectory)
            #expect(error.description.contains(file))
            #expect(!error.description.contains("\n"))
        }
        #expect(throws: FuseError(.notMounted, mountpoint: missing)) { try FuseMount.unmount(missing) }
    }

    @Test("mount options become fuse_opt arguments")
    func sessionArguments() {
        var options = FuseMountOptions()
        options.fsName = "strata:a,b\\c"
        options.allowOther = true
        options.autoUnmount = true
        let arguments = options.sessionArguments
        #expect(arguments.first == "strata")
        #expect(arguments.contains("fsname=strata:a\\,b\\\\c"))
        #expect(arguments.contains("default_permissions"))
        #expect(arguments.contains("ro") && arguments.contains("allow_other") && arguments.contains("auto_unmount"))
        #expect(arguments.contains("max_read=1048576"))
        #expect(!arguments.contains("-d"))
        #expect(FuseMount.absolute("/a/./b/../c//d/") == "/a/c/d")
    }
}

func mountInfo() -> [MountEntry] { MountTable.read() }

func listDirectory(_ path: String) throws -> [String] {
    guard let directory = opendir(path) else { throw FSError(errno) }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        names.append(name)
    }
    return names
}
