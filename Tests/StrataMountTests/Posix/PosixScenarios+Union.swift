#if canImport(Glibc)
import Glibc
#endif

/// What unionmount-testsuite looks at: listings and contents after changes to entries that may
/// come from the lower layers (whiteouts, opaque and renamed directories, copy-up).
enum UnionScenarios {
    static var all: [PosixScenario] { [
        S("listing after unlink and re-create", [file("a", "a"), file("b", "b"), dir("d")]) { r in
            r.list(""); r.unlink("a"); r.list(""); let fd = r.open("a", O_WRONLY | O_CREAT, 0o644); r.close(fd); r.list(""); r.content("a")
        },
        S("a directory removed and made again is empty", [dir("d"), file("d/x"), dir("d/s")]) { r in
            r.unlink("d/x"); r.rmdir("d/s"); r.rmdir("d"); r.mkdir("d"); r.list("d"); r.stat("d"); r.mkdir("d/s"); r.list("d/s")
        },
        S("a file replaced by a directory and back", [file("x", "file")]) { r in
            r.unlink("x"); r.mkdir("x"); r.stat("x"); r.list("x"); r.rmdir("x"); r.symlink("t", "x"); r.stat("x"); r.list("")
        },
        S("a directory replaced by a file", [dir("x"), file("x/inner")]) { r in
            r.unlink("x/inner"); r.rmdir("x"); let fd = r.open("x", O_WRONLY | O_CREAT, 0o644); r.write(fd, "now a file"); r.close(fd)
            r.stat("x"); r.content("x"); r.list("")
        },
        S("a renamed directory keeps its contents, the old name is gone", [dir("a"), file("a/f", "f"), dir("a/s"), file("a/s/g", "g")]) { r in
            r.rename("a", "b"); r.list("b"); r.list("b/s"); r.content("b/s/g"); r.list("a"); r.mkdir("a"); r.list("a")
            r.rename("b/s", "a/s"); r.list("a/s"); r.list("b")
        },
        S("a renamed directory can be renamed again and removed", [dir("a"), file("a/f")]) { r in
            r.rename("a", "b"); r.rename("b", "c"); r.list("c"); r.unlink("c/f"); r.rmdir("c"); r.list("")
        },
        S("a file moved into a new directory", [file("f", "data"), dir("old")]) { r in
            r.mkdir("new"); r.rename("f", "new/f"); r.rename("old", "new/old"); r.list("new"); r.list(""); r.content("new/f")
        },
        S("writes to a file then renamed over another", [file("a", "aaaa"), file("b", "bbbb")]) { r in
            let fd = r.open("a", O_WRONLY); r.pwrite(fd, "A", at: 0); r.close(fd); r.rename("a", "b"); r.content("b"); r.list("")
        },
        S("deep lower paths are copied up on change", [dir("a"), dir("a/b"), dir("a/b/c"), file("a/b/c/f", "deep", mode: 0o640)]) { r in
            r.stat("a"); r.stat("a/b"); r.chmod("a/b/c/f", 0o600); r.stat("a/b/c/f"); r.stat("a"); r.stat("a/b"); r.stat("a/b/c"); r.content("a/b/c/f")
        },
        S("metadata-only changes keep the data", [file("big", String(repeating: "0123456789", count: 5000))]) { r in
            r.chown("big", nobody, nobody); r.setxattr("big", "user.a", "1"); r.stat("big"); r.content("big")
        },
        S("open read-only does not change anything", [file("a", "abc"), dir("d")]) { r in
            r.stat("a"); r.stat(""); let fd = r.open("a", O_RDONLY); r.read(fd); r.close(fd); r.list("d"); r.stat("a"); r.stat("")
        },
        S("open for writing without writing", [file("a", "abc")]) { r in
            r.stat("a"); let fd = r.open("a", O_RDWR); r.close(fd); r.stat("a"); r.stat("")
        },
        S("exchange a lower directory with a new one", [dir("d"), file("d/f", "f")]) { r in
            r.mkdir("n"); r.renameat2("d", "n", 2); r.list("d"); r.list("n"); r.content("n/f"); r.rmdir("d"); r.list("")
        },
    ] }
}

enum PosixScenarios {
    static var all: [PosixScenario] {
        FileScenarios.all + NameScenarios.all + RenameScenarios.all + AttributeScenarios.all + UnionScenarios.all
    }
}
