#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// Each write operation on a real mount with an upper directory. Tests in a suite share the
/// machine's FUSE: run one at a time.
@Suite(.serialized, .mountTimeLimit) struct UpperOperationTests {
    @Test func createWriteTruncateAndRemove() throws {
        let f = try UpperFixture()
        try f.mount()
        try f.run("""
        printf abc > new; printf def >> new; truncate -s 4 new
        mkdir dir; ln -s new sl; ln new hl; mkfifo fifo; mknod dev c 1 3
        chmod 0600 new; chown 7:8 new; touch -h -d @1234567890 sl
        setfattr -n user.x -v 1 new; setfattr -x user.k etc/hosts
        mkdir gone; rmdir gone; printf z > tmp; rm tmp
        """)
        #expect(readText(f.path("new")) == "abcd")
        let st = statOf(f.path("new"))
        #expect(st?.st_mode == S_IFREG | 0o600 && st?.st_uid == 7 && st?.st_gid == 8 && st?.st_nlink == 2)
        #expect(statOf(f.path("sl"))?.st_mtim.tv_sec == 1234567890)
        #expect(statOf(f.path("fifo")).map { $0.st_mode & S_IFMT } == S_IFIFO)
        #expect(statOf(f.path("dev"))?.st_rdev == 0x103)
        #expect(try f.run("getfattr --only-values -n user.x new") == "1")
        #expect(try f.run("getfattr -d etc/hosts") == "")
        #expect(statOf(f.path("gone")) == nil && statOf(f.path("tmp")) == nil)
        try f.unmount()
        // The image is untouched; the upper holds the changes.
        #expect(readText(f.upper + "/new") == "abcd")
        #expect(statOf(f.upper + "/gone") == nil)
    }

    @Test func renameFlagsAndErrors() throws {
        let f = try UpperFixture()
        try f.mount()
        try f.run("mkdir a b; printf 1 > a/x; printf 2 > b/y; printf 3 > one; printf 4 > two")
        // RENAME_NOREPLACE and RENAME_EXCHANGE
        #expect(renameat2(f.path("one"), f.path("two"), 1) == EEXIST)
        #expect(renameat2(f.path("one"), f.path("two"), 2) == 0)
        #expect(readText(f.path("one")) == "4" && readText(f.path("two")) == "3")
        #expect(renameat2(f.path("etc/hosts"), f.path("d/e/f"), 2) == 0)
        #expect(readText(f.path("d/e/f")) == "hello" && readText(f.path("etc/hosts")) == "f")
        // onto a non-empty directory (upper, and lower)
        #expect(renameat2(f.path("a"), f.path("b"), 0) == ENOTEMPTY)
        #expect(renameat2(f.path("a"), f.path("d"), 0) == ENOTEMPTY)
        // onto an empty lower directory, after emptying it
        try f.run("rm -rf etc/sub/* && mv -T a etc/sub && ls etc/sub")
        #expect(readText(f.path("etc/sub/x")) == "1")
        try f.unmount()
    }

    @Test func newEntriesBelongToTheCaller() throws {
        let f = try UpperFixture()
        try f.mount(extra: ["--allow-other"])
        try f.run("chmod 0777 . sg")
        try f.sh("""
        cd '\(f.mountpoint)'
        setpriv --reuid 1000 --regid 1000 --clear-groups sh -c 'umask 027; printf x > mine; mkdir mydir; mkdir sg/sub; printf y > sg/file'
        """)
        let mine = statOf(f.path("mine"))
        #expect(mine?.st_uid == 1000 && mine?.st_gid == 1000 && mine.map { $0.st_mode & 0o777 } == 0o640)
        #expect(statOf(f.path("mydir")).map { $0.st_mode & 0o7777 } == 0o750)
        let sub = statOf(f.path("sg/sub"))
        #expect(sub?.st_gid == 50 && sub.map { $0.st_mode & 0o7777 } == 0o2750)
        #expect(statOf(f.path("sg/file"))?.st_gid == 50)
        try f.unmount()
    }

    @Test func longNamesAndDeepPaths() throws {
        let f = try UpperFixture()
        try f.mount()
        var sv = statvfs()
        #expect(statvfs(f.mountpoint, &sv) == 0)
        let max = Int(sv.f_namemax)
        #expect(max == 255)
        #expect(mkdir(f.path(String(repeating: "n", count: max)), 0o755) == 0)
        #expect(mkdir(f.path(String(repeating: "n", count: max + 1)), 0o755) == -1 && errno == ENAMETOOLONG)
        #expect(open(f.path(String(repeating: "m", count: max + 1)), O_CREAT | O_WRONLY, 0o644) == -1 && errno == ENAMETOOLONG)
        // A path near PATH_MAX below the mount point, made and read back one level at a time.
        let component = String(repeating: "p", count: 200)
        var path = f.mountpoint
        while path.utf8.count + component.utf8.count + 1 < Int(PATH_MAX) - 20 {
            path += "/" + component
            #expect(mkdir(path, 0o755) == 0)
        }
        let file = path + "/leaf"
        try FileIO.writeAtomically(file, Array("deep".utf8))
        #expect(readText(file) == "deep")
        try f.unmount()
    }

    @Test func unlinkedOpenFileStaysUsable() throws {
        let f = try UpperFixture()
        try f.mount()
        for name in ["d/e/f", "fresh"] {
            let p = f.path(name)
            if name == "fresh" { try FileIO.writeAtomically(p, Array("hello".utf8)) }
            let fd = open(p, O_RDWR)
            #expect(fd >= 0)
            #expect(unlink(p) == 0)
            var st = stat()
            #expect(fstat(fd, &st) == 0 && st.st_nlink == 0)
            #expect(pwrite(fd, "HE", 2, 0) == 2)
            var buffer = [UInt8](repeating: 0, count: 2)
            #expect(pread(fd, &buffer, 2, 0) == 2 && buffer == Array("HE".utf8))
            close(fd)
            #expect(statOf(p) == nil)
        }
        try f.unmount()
    }

    @Test func secondMountOfTheSameUpperIsRefused() throws {
        let f = try UpperFixture()
        try f.mount()
        let other = f.temp.child("mnt2")
        try FileIO.makeDirectories(other)
        let r = try StrataBinary.run(["mount", "--cache", f.cache, "--upper", f.upper, "\(f.layout):t", other])
        #expect(!r.succeeded)
        #expect(r.stderr.contains("in use by another mount"), "\(r.stderr)")
        #expect(!Mounts.isMounted(other))
        try f.unmount()
    }
}

/// renameat2 (Swift's Glibc module does not declare it). Returns 0 or the errno.
func renameat2(_ from: String, _ to: String, _ flags: UInt32) -> Int32 {
    LinuxCalls.renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) == 0 ? 0 : errno
}
