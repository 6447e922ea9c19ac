#if canImport(Glibc)
import Glibc
#endif

/// mkdir, rmdir, mkfifo, mknod, symlink, link, unlink.
enum NameScenarios {
    static var all: [PosixScenario] { [
        S("mkdir makes a directory and links the parent", [dir("sub")]) { r in
            r.stat(""); r.mkdir("n", 0o750); r.stat("n"); r.stat(""); r.stat("n/..", follow: true)
        },
        S("mkdir over existing names", [file("f"), dir("d"), symlink("l", "nowhere")]) { r in
            r.mkdir("f"); r.mkdir("d"); r.mkdir("l"); r.mkdir("."); r.stat("l")
        },
        S("mkdir errors", [file("f")]) { r in
            r.mkdir("missing/n"); r.mkdir("f/n"); r.mkdir(longName); r.mkdir(maxName); r.stat(maxName)
        },
        S("mkdir with set-id and sticky bits") { r in
            r.mkdir("a", 0o7777); r.stat("a"); r.mkdir("b", 0o1777); r.stat("b"); r.mkdir("c", 0o2755); r.stat("c")
        },
        S("mkdir in a setgid directory inherits group and bit", dirMode: 0o2775, dirGID: 50) { r in
            r.mkdir("n"); r.stat("n"); let fd = r.open("f", O_WRONLY | O_CREAT, 0o2755); r.close(fd); r.stat("f"); r.mkfifo("p"); r.stat("p")
        },
        S("non-root: mkdir in a setgid directory", dirMode: 0o2777, dirGID: 50) { r in
            r.asUser { r.mkdir("n"); r.stat("n"); let fd = r.open("f", O_WRONLY | O_CREAT, 0o2755); r.close(fd); r.stat("f") }
        },
        S("non-root: mkdir needs write permission") { r in r.asUser { r.mkdir("n") }; r.stat("n") },
        S("non-root: mkdir in its own directory", dirMode: 0o755, dirUID: nobody, dirGID: nobody) { r in
            r.asUser { r.mkdir("n", 0o700); r.stat("n"); r.mkdir("n/m"); r.stat("n/m") }
        },
        S("rmdir unlinks the parent", [dir("d"), dir("e")]) { r in
            r.stat(""); r.rmdir("d"); r.stat(""); r.stat("d"); r.list("")
        },
        S("rmdir errors", [dir("full"), file("full/x"), file("f"), dir("e")]) { r in
            r.rmdir("full"); r.rmdir("f"); r.rmdir("missing"); r.rmdir("."); r.rmdir("e/."); r.rmdir("e/.."); r.rmdir("f/x")
            r.rmdir(longName); r.list("full")
        },
        S("rmdir after emptying, then mkdir again", [dir("d"), file("d/a", "a"), dir("d/s"), file("d/s/b")]) { r in
            r.unlink("d/a"); r.rmdir("d"); r.unlink("d/s/b"); r.rmdir("d/s"); r.stat("d"); r.rmdir("d"); r.stat("d")
            r.mkdir("d"); r.list("d"); r.stat("d"); r.stat("d/a")
        },
        S("non-root: rmdir in a sticky directory", dirMode: 0o1777,
          [dir("mine", mode: 0o755, uid: nobody, gid: nobody), dir("theirs", mode: 0o777, uid: other), dir("roots", mode: 0o777)]) { r in
            r.asUser { r.rmdir("theirs"); r.rmdir("roots"); r.rmdir("mine") }; r.list("")
        },
        S("mkfifo makes a fifo", [file("f")]) { r in
            r.mkfifo("p", 0o640); r.stat("p"); r.mkfifo("p"); r.mkfifo("f"); r.mkfifo("missing/p"); r.mkfifo(longName); r.stat("")
        },
        S("non-root: mkfifo in a writable directory", dirMode: 0o777) { r in r.asUser { r.mkfifo("p", 0o666); r.stat("p") } },
        S("mknod devices and files") { r in
            r.mknod("c", S_IFCHR | 0o640, 1, 3); r.stat("c"); r.mknod("b", S_IFBLK | 0o600, 7, 1); r.stat("b")
            r.mknod("r", S_IFREG | 0o600); r.stat("r"); r.mknod("p", S_IFIFO | 0o600); r.stat("p"); r.mknod("c", S_IFCHR | 0o640, 1, 3)
        },
        S("non-root: mknod of a device is EPERM", dirMode: 0o777) { r in
            r.asUser { r.mknod("c", S_IFCHR | 0o644, 1, 3); r.mknod("f", S_IFIFO | 0o644); r.stat("f") }; r.stat("c")
        },
        S("symlink and readlink", [file("f", "abc")]) { r in
            r.symlink("f", "l"); r.stat("l"); r.stat("l", follow: true); r.readlink("l"); r.readlink("f"); r.readlink("missing")
            r.symlink("x", "l"); r.symlink("x", "f"); r.stat("")
        },
        S("symlink targets of any length", []) { r in
            r.symlink(String(repeating: "t", count: 1000), "long"); r.stat("long"); r.symlink(String(repeating: "t", count: 4096), "toolong")
            r.symlink("", "empty"); r.symlink("x", longName)
        },
        S("symlinks are followed by open and stat", [dir("d"), file("d/f", "in d"), symlink("ld", "d"), symlink("abs", "/")]) { r in
            r.content("ld/f"); r.stat("ld/f"); r.stat("ld", follow: true); r.open("ld/f/x", O_RDONLY)
        },
        S("lower symlink is read and removed", [symlink("l", "target")]) { r in
            r.readlink("l"); r.stat("l"); r.unlink("l"); r.readlink("l"); r.symlink("new", "l"); r.readlink("l")
        },
        S("link makes another name", [file("a", "abc")]) { r in
            r.stat("a"); r.stat(""); r.link("a", "b"); r.stat("a"); r.stat("b"); r.stat(""); r.content("b")
        },
        S("link errors", [file("a"), dir("d"), file("e")]) { r in
            r.link("a", "e"); r.link("d", "d2"); r.link("missing", "x"); r.link("a", "missing/x"); r.link("a", longName)
            r.link("a/x", "y"); r.stat("a")
        },
        S("link of a symlink, with and without following", [file("f", "x"), symlink("l", "f")]) { r in
            r.linkat("l", "l2", follow: false); r.stat("l2"); r.linkat("l", "f2", follow: true); r.stat("f2"); r.stat("f")
        },
        S("link of a fifo and of a device", [fifo("p"), chardev("c", 1, 3)]) { r in
            r.link("p", "p2"); r.stat("p2"); r.link("c", "c2"); r.stat("c2"); r.stat("c")
        },
        S("unlink one of two hardlinks", [file("a", "abc"), hardlink("b", "a")]) { r in
            r.stat("a"); r.unlink("a"); r.stat("b"); r.content("b"); r.stat("a"); r.link("b", "a"); r.stat("a")
        },
        S("lower hardlinks: link a third name and write", [file("a", "1"), hardlink("b", "a")]) { r in
            r.link("a", "c"); r.stat("a"); r.stat("b"); r.stat("c")
            let fd = r.open("c", O_WRONLY | O_APPEND); r.write(fd, "2"); r.close(fd); r.content("a"); r.content("b")
        },
        S("non-root: link needs write permission on the directory", [file("a", mode: 0o666)]) { r in
            r.asUser { r.link("a", "b") }; r.stat("a")
        },
        S("unlink removes a name", [file("a", "x")]) { r in
            r.stat(""); r.unlink("a"); r.stat("a"); r.stat(""); r.list("")
        },
        S("unlink errors", [dir("d"), file("f")]) { r in
            r.unlink("d"); r.unlink("missing"); r.unlink("f/x"); r.unlink(longName); r.unlink("d/."); r.list("")
        },
        S("unlink fifo, symlink, device", [fifo("p"), symlink("l", "p"), chardev("c", 1, 3)]) { r in
            r.unlink("p"); r.unlink("l"); r.unlink("c"); r.list("")
        },
        S("unlink and create again gives a new file", [file("a", "old")]) { r in
            r.stat("a"); r.unlink("a"); let fd = r.open("a", O_RDWR | O_CREAT, 0o600); r.close(fd); r.stat("a"); r.content("a")
        },
        S("unlink of an open file", [file("a", "data"), hardlink("b", "a")]) { r in
            let fd = r.open("a", O_RDONLY); r.unlink("a"); r.fstat(fd, "a"); r.unlink("b"); r.fstat(fd, "a"); r.read(fd); r.close(fd)
            r.list("")
        },
        S("non-root: unlink in a sticky directory", dirMode: 0o1777,
          [file("mine", uid: nobody, gid: nobody), file("theirs", mode: 0o666, uid: other), file("roots", mode: 0o666)]) { r in
            r.asUser { r.unlink("theirs"); r.unlink("roots"); r.unlink("mine") }; r.list("")
        },
        S("non-root: sticky directory owned by the caller", dirMode: 0o1777, dirUID: nobody, dirGID: nobody,
          [file("theirs", mode: 0o666, uid: other)]) { r in
            r.asUser { r.unlink("theirs") }; r.list("")
        },
        S("fstat of an O_PATH descriptor after unlink", [file("a", "data"), dir("d")]) { r in
            let fd = r.open("a", PosixTrace.oPath); r.unlink("a"); r.fstat(fd, "a"); r.close(fd)
            let dfd = r.open("d", PosixTrace.oPath); r.rmdir("d"); r.fstat(dfd, "d"); r.close(dfd)
        },
        S("non-root: unlink needs write permission", [file("a", mode: 0o666)]) { r in r.asUser { r.unlink("a") }; r.stat("a") },
    ] }
}
