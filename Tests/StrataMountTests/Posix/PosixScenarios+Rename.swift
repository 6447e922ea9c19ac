#if canImport(Glibc)
import Glibc
#endif

/// rename and renameat2.
enum RenameScenarios {
    static let noReplace: UInt32 = 1
    static let exchange: UInt32 = 2

    static var all: [PosixScenario] { [
        S("rename a file keeps its inode and changes ctime", [file("a", "abc")]) { r in
            r.stat("a"); r.stat(""); r.rename("a", "b"); r.stat("a"); r.stat("b"); r.stat(""); r.content("b")
        },
        S("rename over an existing file", [file("a", "new"), file("b", "old")]) { r in
            r.stat("a"); r.stat("b"); let fd = r.open("b", O_RDONLY); r.rename("a", "b"); r.read(fd); r.fstat(fd, "old b"); r.close(fd)
            r.stat("b"); r.stat("a"); r.list("")
        },
        S("rename a directory over an empty directory", [dir("a"), file("a/x", "x"), dir("b")]) { r in
            r.stat(""); r.rename("a", "b"); r.stat("b"); r.stat(""); r.list("b"); r.stat("a")
        },
        S("rename a directory over a non-empty one", [dir("a"), dir("b"), file("b/x")]) { r in r.rename("a", "b"); r.list("b") },
        S("rename type mismatches", [file("f"), dir("d"), dir("e")]) { r in
            r.rename("f", "d"); r.rename("d", "f"); r.rename("d", "d/sub"); r.rename("d", "d"); r.list("")
        },
        S("rename a directory into its own subdirectory", [dir("a"), dir("a/b"), dir("a/b/c")]) { r in
            r.rename("a", "a/b/c/d"); r.rename("a", "a/b"); r.rename("a/b", "a/b/c/x"); r.list("a/b/c")
        },
        S("rename errors", [file("f"), dir("d")]) { r in
            r.rename("missing", "x"); r.rename("f", "missing/x"); r.rename("f", longName); r.rename(longName, "x"); r.rename("f/x", "y")
            r.rename(".", "x"); r.rename("d", "."); r.rename("d/.", "x"); r.rename("f", "d/.."); r.list("")
        },
        S("rename to the same name and between two links", [file("a", "x"), hardlink("b", "a")]) { r in
            r.stat("a"); r.rename("a", "a"); r.rename("a", "b"); r.stat("a"); r.stat("b"); r.list("")
        },
        S("rename a directory to another parent", [dir("p"), dir("q"), dir("p/c"), file("p/c/f", "f")]) { r in
            r.stat("p"); r.stat("q"); r.rename("p/c", "q/c"); r.stat("p"); r.stat("q"); r.stat("q/c"); r.stat("q/c/..", follow: true)
            r.content("q/c/f"); r.list("p"); r.list("q")
        },
        S("rename a directory and back", [dir("d"), file("d/f", "f")]) { r in
            r.rename("d", "e"); r.list("e"); r.mkdir("d"); r.list("d"); r.rmdir("d"); r.rename("e", "d"); r.list("d"); r.content("d/f")
        },
        S("rename a file and create the old name again", [file("a", "first")]) { r in
            r.rename("a", "b"); let fd = r.open("a", O_RDWR | O_CREAT | O_EXCL, 0o644); r.write(fd, "second"); r.close(fd)
            r.content("a"); r.content("b"); r.stat("a"); r.stat("b")
        },
        S("rename symlink, fifo and device", [symlink("l", "t"), fifo("p"), chardev("c", 1, 3)]) { r in
            r.rename("l", "l2"); r.readlink("l2"); r.rename("p", "p2"); r.stat("p2"); r.rename("c", "c2"); r.stat("c2"); r.list("")
        },
        S("renameat2 RENAME_NOREPLACE", [file("a", "a"), file("b", "b"), dir("d")]) { r in
            r.renameat2("a", "b", noReplace); r.renameat2("a", "c", noReplace); r.renameat2("d", "b", noReplace)
            r.renameat2("missing", "z", noReplace); r.list(""); r.content("c")
        },
        S("renameat2 RENAME_EXCHANGE", [file("a", "a"), dir("d"), file("d/x", "x")]) { r in
            r.stat("a"); r.stat("d"); r.renameat2("a", "d", exchange); r.stat("a"); r.stat("d"); r.list("a"); r.content("d")
            r.renameat2("a", "missing", exchange); r.renameat2("a", "a", exchange); r.renameat2("a", "d", exchange | noReplace)
        },
        S("renameat2 RENAME_EXCHANGE across directories", [dir("p"), dir("q"), file("p/f", "pf"), dir("q/g")]) { r in
            r.stat("p"); r.stat("q"); r.renameat2("p/f", "q/g", exchange); r.stat("p"); r.stat("q"); r.list("p"); r.list("q")
            r.stat("p/f/..", follow: true)
        },
        S("renameat2 unknown flags", [file("a")]) { r in r.renameat2("a", "b", 8); r.renameat2("a", "b", 1 << 10); r.list("") },
        S("non-root: rename in a sticky directory", dirMode: 0o1777,
          [file("mine", uid: nobody, gid: nobody), file("theirs", mode: 0o666, uid: other)]) { r in
            r.asUser { r.rename("theirs", "x"); r.rename("mine", "theirs"); r.rename("mine", "y") }; r.list("")
        },
        S("non-root: rename needs write permission", [file("a", mode: 0o666)]) { r in r.asUser { r.rename("a", "b") }; r.list("") },
        S("non-root: moving a directory needs write permission on it", dirMode: 0o777,
          [dir("d", mode: 0o555, uid: nobody), dir("to", mode: 0o777)]) { r in
            r.asUser { r.rename("d", "to/d"); r.rename("d", "e"); r.list("") }
        },
        S("rename over an open file that is then closed", [file("a", "A"), file("b", "B")]) { r in
            let fd = r.open("b", O_RDWR); r.rename("a", "b"); r.write(fd, "!"); r.fstat(fd, "old b"); r.close(fd); r.content("b")
        },
        S("rename of an emptied lower directory over another", [dir("a"), file("a/x"), dir("b"), file("b/y")]) { r in
            r.unlink("b/y"); r.rename("a", "b"); r.list("b"); r.stat("a"); r.rmdir("b"); r.unlink("b/x"); r.rmdir("b"); r.list("")
        },
    ] }
}
