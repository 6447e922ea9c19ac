#if canImport(Glibc)
import Glibc
#endif

let nobody: UInt32 = 65534
let other: UInt32 = 65533
let longName = String(repeating: "x", count: 256)
let maxName = String(repeating: "y", count: 255)

func S(_ name: String, dirMode: UInt32 = 0o755, dirUID: UInt32 = 0, dirGID: UInt32 = 0, _ entries: [PosixEntry] = [],
       _ steps: @escaping (PosixTrace) -> Void) -> PosixScenario {
    PosixScenario(name: name, dirMode: dirMode, dirUID: dirUID, dirGID: dirGID, entries: entries, steps: steps)
}

/// open, creat, read, write, truncate, fallocate.
enum FileScenarios {
    static var all: [PosixScenario] { [
        S("open O_CREAT makes a file and changes the directory") { r in
            r.stat(""); let fd = r.open("new", O_WRONLY | O_CREAT, 0o640); r.close(fd); r.stat("new"); r.stat("")
        },
        S("open O_CREAT|O_EXCL on an existing file", [file("a", "x")]) { r in
            r.open("a", O_WRONLY | O_CREAT | O_EXCL); r.stat("a")
        },
        S("open O_CREAT on an existing file keeps it", [file("a", "abc", mode: 0o600)]) { r in
            r.stat("a"); r.stat(""); let fd = r.open("a", O_RDWR | O_CREAT, 0o777); r.close(fd); r.stat("a"); r.stat(""); r.content("a")
        },
        S("open O_TRUNC empties and stamps", [file("a", "abcdef")]) { r in
            r.stat("a"); let fd = r.open("a", O_WRONLY | O_TRUNC); r.fstat(fd, "a"); r.close(fd); r.stat("a"); r.content("a")
        },
        S("open O_TRUNC on an empty file still stamps", [file("a")]) { r in
            r.stat("a"); let fd = r.open("a", O_RDWR | O_TRUNC); r.close(fd); r.stat("a")
        },
        S("open O_RDONLY|O_TRUNC truncates", [file("a", "abc", mode: 0o644)]) { r in
            r.stat("a"); let fd = r.open("a", O_RDONLY | O_TRUNC); r.close(fd); r.stat("a")
        },
        S("open a missing file") { r in r.open("missing", O_RDONLY); r.open("missing/x", O_RDONLY | O_CREAT) },
        S("open through a file is ENOTDIR", [file("a", "x")]) { r in r.open("a/x", O_RDONLY); r.open("a/x", O_WRONLY | O_CREAT) },
        S("open a directory for writing is EISDIR", [dir("d")]) { r in
            r.open("d", O_WRONLY); r.open("d", O_RDWR); let fd = r.open("d", O_RDONLY); r.close(fd)
            let fd2 = r.open("d", O_RDONLY | O_DIRECTORY); r.close(fd2); r.open("d", O_WRONLY | O_CREAT)
        },
        S("open O_DIRECTORY on a file", [file("a")]) { r in r.open("a", O_RDONLY | O_DIRECTORY) },
        S("open a symlink loop", [symlink("a", "b"), symlink("b", "a")]) { r in
            r.open("a", O_RDONLY); r.open("a", O_RDONLY | O_CREAT); r.stat("a", follow: true)
        },
        S("open O_NOFOLLOW on a symlink", [file("f", "x"), symlink("l", "f")]) { r in
            r.open("l", O_RDONLY | O_NOFOLLOW); let fd = r.open("l", O_RDONLY); r.read(fd); r.close(fd)
        },
        S("open O_CREAT through a dangling symlink", [symlink("l", "target")]) { r in
            r.open("l", O_WRONLY | O_CREAT | O_EXCL); let fd = r.open("l", O_WRONLY | O_CREAT, 0o600); r.close(fd)
            r.stat("target"); r.stat("l"); r.list("")
        },
        S("open a 256-byte name") { r in
            r.open(longName, O_RDONLY); r.open(longName, O_WRONLY | O_CREAT); let fd = r.open(maxName, O_WRONLY | O_CREAT); r.close(fd)
            r.stat(maxName); r.unlink(maxName)
        },
        S("open O_APPEND writes at the end", [file("a", "abc")]) { r in
            let fd = r.open("a", O_WRONLY | O_APPEND); r.write(fd, "de"); r.pwrite(fd, "Z", at: 0); r.close(fd); r.content("a")
        },
        S("creat truncates an existing file", [file("a", "abcdef", mode: 0o600)]) { r in
            let fd = r.creat("a", 0o777); r.write(fd, "x"); r.close(fd); r.stat("a"); r.content("a")
        },
        S("creat makes a file with the mode") { r in
            let fd = r.creat("n", 0o600); r.fstat(fd, "n"); r.close(fd); r.stat("n")
        },
        S("open O_CREAT with mode 0 then write through the descriptor") { r in
            let fd = r.open("n", O_RDWR | O_CREAT, 0); r.write(fd, "ok"); r.pwrite(fd, "K", at: 1); r.read(fd, 8, at: 0); r.close(fd)
            r.stat("n"); r.open("n", O_RDONLY)
        },
        S("open a fifo O_WRONLY|O_NONBLOCK without reader", [fifo("p")]) { r in
            r.open("p", O_WRONLY | O_NONBLOCK); let fd = r.open("p", O_RDONLY | O_NONBLOCK); r.close(fd)
        },
        S("write changes size, blocks, mtime and ctime", [file("a")]) { r in
            r.stat("a"); let fd = r.open("a", O_WRONLY); r.write(fd, "hello"); r.fstat(fd, "a"); r.close(fd); r.stat("a")
        },
        S("pwrite past the end leaves a hole", [file("a", "ab")]) { r in
            let fd = r.open("a", O_RDWR); r.pwrite(fd, "z", at: 6); r.read(fd, 16, at: 0); r.fstat(fd, "a"); r.close(fd)
        },
        S("write in the middle of a file", [file("a", "0123456789")]) { r in
            let fd = r.open("a", O_RDWR); r.read(fd, 4); r.write(fd, "ab"); r.read(fd, 16, at: 0); r.close(fd); r.content("a")
        },
        S("write to a read-only descriptor is EBADF", [file("a", "abc")]) { r in
            let fd = r.open("a", O_RDONLY); r.write(fd, "x"); r.close(fd); r.stat("a"); r.content("a")
        },
        S("read from a write-only descriptor is EBADF", [file("a", "abc")]) { r in
            let fd = r.open("a", O_WRONLY); r.read(fd); r.close(fd)
        },
        S("open read-only before another handle writes", [file("a", "old")]) { r in
            let ro = r.open("a", O_RDONLY); r.read(ro, 2)
            let rw = r.open("a", O_RDWR); r.write(rw, "NEW"); r.close(rw)
            r.read(ro, 16, at: 0); r.fstat(ro, "a"); r.close(ro)
        },
        S("hardlinks share writes", [file("a", "one"), hardlink("b", "a")]) { r in
            r.stat("a"); r.stat("b"); let fd = r.open("b", O_WRONLY | O_APPEND); r.write(fd, "+two"); r.close(fd)
            r.content("a"); r.stat("a"); r.stat("b")
        },
        S("read a file at end of file", [file("a", "abc")]) { r in
            let fd = r.open("a", O_RDONLY); r.read(fd, 2); r.read(fd, 2); r.read(fd, 2); r.lseek(fd, 0, SEEK_END); r.close(fd)
        },
        S("truncate grows with zeros", [file("a", "ab")]) { r in
            r.stat("a"); r.truncate("a", 5); r.stat("a"); r.content("a")
        },
        S("truncate shrinks", [file("a", "abcdef")]) { r in r.stat("a"); r.truncate("a", 2); r.stat("a"); r.content("a") },
        S("truncate to the same size still stamps", [file("a", "abc")]) { r in r.stat("a"); r.truncate("a", 3); r.stat("a") },
        S("truncate errors", [file("a", "abc"), dir("d"), symlink("l", "a")]) { r in
            r.truncate("a", -1); r.truncate("d", 0); r.truncate("missing", 0); r.truncate("a/x", 0); r.truncate(longName, 0)
            r.truncate("l", 1); r.stat("a"); r.stat("l")
        },
        S("ftruncate on a read-only descriptor", [file("a", "abc")]) { r in
            let fd = r.open("a", O_RDONLY); r.ftruncate(fd, 0); r.close(fd); r.stat("a")
        },
        S("ftruncate grows and shrinks", [file("a", "abcdef")]) { r in
            let fd = r.open("a", O_RDWR); r.ftruncate(fd, 3); r.fstat(fd, "a"); r.ftruncate(fd, 9000); r.fstat(fd, "a")
            r.read(fd, 8, at: 0); r.ftruncate(fd, -1); r.close(fd)
        },
        S("ftruncate after unlink", [file("a", "abc")]) { r in
            let fd = r.open("a", O_RDWR); r.unlink("a"); r.ftruncate(fd, 1); r.fstat(fd, "a"); r.read(fd, 8, at: 0); r.close(fd)
        },
        S("posix_fallocate extends and allocates", [file("a", "ab")]) { r in
            let fd = r.open("a", O_RDWR); r.fallocate(fd, 0, 10000); r.fstat(fd, "a"); r.read(fd, 4, at: 0); r.close(fd)
        },
        S("posix_fallocate inside keeps size", [file("a", "abcdefgh")]) { r in
            let fd = r.open("a", O_RDWR); r.fallocate(fd, 2, 3); r.fstat(fd, "a"); r.close(fd); r.content("a")
        },
        S("posix_fallocate errors", [file("a", "ab")]) { r in
            let ro = r.open("a", O_RDONLY); r.fallocate(ro, 0, 10); r.close(ro)
            let fd = r.open("a", O_RDWR); r.fallocate(fd, 0, 0); r.fallocate(fd, -1, 10); r.close(fd); r.stat("a")
        },
        S("non-root: O_CREAT in a directory it cannot write") { r in
            r.asUser { r.open("n", O_WRONLY | O_CREAT); r.open("n", O_WRONLY | O_CREAT | O_EXCL) }; r.stat("n")
        },
        S("non-root: open without read or write permission", [file("a", "x", mode: 0o600), file("b", "y", mode: 0o644)]) { r in
            r.asUser {
                r.open("a", O_RDONLY); r.open("b", O_WRONLY); r.open("b", O_RDWR)
                let fd = r.open("b", O_RDONLY); r.read(fd); r.close(fd); r.open("b", O_RDONLY | O_TRUNC)
            }
            r.stat("b")
        },
        S("non-root: search permission on a path component", [dir("d", mode: 0o644), file("d/f", "x", mode: 0o666)]) { r in
            r.asUser { r.open("d/f", O_RDONLY); r.stat("d/f"); r.list("d"); r.access("d/f", F_OK); r.unlink("d/f") }
            r.chmod("d", 0o711); r.asUser { let fd = r.open("d/f", O_RDONLY); r.read(fd); r.close(fd); r.list("d") }
        },
        S("non-root: O_CREAT in a writable directory belongs to the caller", dirMode: 0o777) { r in
            r.asUser { let fd = r.open("n", O_WRONLY | O_CREAT | O_EXCL, 0o640); r.write(fd, "x"); r.close(fd); r.stat("n") }
        },
        S("non-root: write to a group-writable file", [file("a", "abc", mode: 0o664, gid: nobody)]) { r in
            r.asUser { let fd = r.open("a", O_WRONLY | O_APPEND); r.write(fd, "d"); r.close(fd) }; r.stat("a"); r.content("a")
        },
        S("non-root: write clears setuid and setgid", [file("a", "abc", mode: 0o6777)]) { r in
            r.stat("a"); r.asUser { let fd = r.open("a", O_WRONLY); r.write(fd, "x"); r.close(fd) }; r.stat("a")
        },
        S("non-root: truncate clears setuid", [file("a", "abc", mode: 0o4777)]) { r in
            r.asUser { r.truncate("a", 1) }; r.stat("a")
        },
        S("root write keeps setuid", [file("a", "abc", mode: 0o6755)]) { r in
            let fd = r.open("a", O_WRONLY); r.write(fd, "x"); r.close(fd); r.stat("a")
        },
        S("non-root: truncate without write permission", [file("a", "abc", mode: 0o644)]) { r in
            r.asUser { r.truncate("a", 0) }; r.stat("a")
        },
        S("non-root: O_TRUNC on a file it may write", [file("a", "abc", mode: 0o666)]) { r in
            r.stat("a"); r.asUser { let fd = r.open("a", O_WRONLY | O_TRUNC); r.close(fd) }; r.stat("a")
        },
        S("sticky-free directory: unlink of an open file keeps the data", [file("a", "data")]) { r in
            let fd = r.open("a", O_RDWR); r.unlink("a"); r.fstat(fd, "a"); r.write(fd, "!"); r.read(fd, 16, at: 0); r.close(fd); r.list("")
        },
    ] }
}
