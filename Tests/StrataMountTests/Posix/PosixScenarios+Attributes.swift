#if canImport(Glibc)
import Glibc
#endif

/// chmod, chown, utimensat, xattrs, access.
enum AttributeScenarios {
    static let xattrCreate: Int32 = 1, xattrReplace: Int32 = 2

    static var all: [PosixScenario] { [
        S("chmod changes mode and ctime, not mtime", [file("a", "x")]) { r in
            r.stat("a"); r.chmod("a", 0o600); r.stat("a"); r.chmod("a", 0o7777); r.stat("a"); r.chmod("a", 0); r.stat("a"); r.stat("")
        },
        S("chmod a directory, a fifo, a device", [dir("d"), fifo("p"), chardev("c", 1, 3)]) { r in
            r.chmod("d", 0o1777); r.stat("d"); r.chmod("p", 0o600); r.stat("p"); r.chmod("c", 0o600); r.stat("c")
        },
        S("chmod follows symlinks", [file("f", mode: 0o644), symlink("l", "f")]) { r in
            r.stat("l"); r.chmod("l", 0o600); r.stat("f"); r.stat("l")
        },
        S("fchmod through a descriptor", [file("a", mode: 0o644)]) { r in
            let fd = r.open("a", O_RDONLY); r.fchmod(fd, 0o640); r.fstat(fd, "a"); r.close(fd); r.stat("a")
        },
        S("chmod errors", [file("f")]) { r in r.chmod("missing", 0o600); r.chmod("f/x", 0o600); r.chmod(longName, 0o600) },
        S("non-root: chmod of a file it does not own", [file("a", mode: 0o666), file("mine", uid: nobody, gid: nobody)]) { r in
            r.asUser { r.chmod("a", 0o600); r.chmod("mine", 0o600); r.chmod("mine", 0o4755) }; r.stat("a"); r.stat("mine")
        },
        S("non-root: chmod g+s outside the file's group drops the bit", [file("a", uid: nobody, gid: 50)]) { r in
            r.asUser { r.chmod("a", 0o2755) }; r.stat("a"); r.asUser(nobody, nobody, groups: [50]) { r.chmod("a", 0o2755) }; r.stat("a")
        },
        S("non-root: sticky bit on a file", [file("a", uid: nobody, gid: nobody), dir("d", uid: nobody, gid: nobody)]) { r in
            r.asUser { r.chmod("a", 0o1644); r.chmod("d", 0o1755) }; r.stat("a"); r.stat("d")
        },
        S("chown changes owner and ctime", [file("a", "x")]) { r in
            r.stat("a"); r.chown("a", nobody, nobody); r.stat("a"); r.chown("a", 0, UInt32.max); r.stat("a")
            r.chown("a", UInt32.max, 0); r.stat("a")
        },
        S("chown -1 -1 changes only ctime", [file("a", "x", mode: 0o644)]) { r in
            r.stat("a"); r.chown("a", UInt32.max, UInt32.max); r.stat("a")
        },
        S("chown by root clears set-id bits of a file", [file("a", mode: 0o6755), file("b", mode: 0o6755), file("c", mode: 0o2745)]) { r in
            r.chown("a", nobody, nobody); r.stat("a"); r.chown("b", UInt32.max, UInt32.max); r.stat("b"); r.chown("c", 0, 0); r.stat("c")
        },
        S("chown keeps set-id bits of a directory", [dir("d", mode: 0o6755)]) { r in r.chown("d", nobody, nobody); r.stat("d") },
        S("lchown changes the symlink, chown the target", [file("f"), symlink("l", "f")]) { r in
            r.lchown("l", nobody, nobody); r.stat("l"); r.stat("f"); r.chown("l", other, other); r.stat("f"); r.stat("l")
        },
        S("fchown through a descriptor", [file("a", mode: 0o4755)]) { r in
            let fd = r.open("a", O_RDONLY); r.fchown(fd, nobody, UInt32.max); r.fstat(fd, "a"); r.close(fd)
        },
        S("chown errors", [file("f")]) { r in r.chown("missing", 1, 1); r.chown("f/x", 1, 1); r.chown(longName, 1, 1) },
        S("non-root: chown to another user", [file("mine", uid: nobody, gid: nobody), file("a")]) { r in
            r.asUser { r.chown("mine", other, UInt32.max); r.chown("a", nobody, nobody); r.chown("mine", nobody, 0) }
            r.stat("mine"); r.stat("a")
        },
        S("non-root: chown to its own ids and groups", [file("mine", mode: 0o6755, uid: nobody, gid: nobody)]) { r in
            r.asUser(nobody, nobody, groups: [50]) { r.chown("mine", nobody, 50); r.stat("mine"); r.chown("mine", UInt32.max, nobody) }
            r.stat("mine")
        },
        S("non-root: chown -1 -1 of its own setuid file", [file("mine", mode: 0o4755, uid: nobody, gid: nobody)]) { r in
            r.asUser { r.chown("mine", UInt32.max, UInt32.max) }; r.stat("mine")
        },
        S("utimensat with explicit times", [file("a")]) { r in
            r.stat("a"); r.utimensat("a", .at(100), .at(200)); r.stat("a", exactTimes: true); r.utimensat("", .at(5), .at(6)); r.stat("", exactTimes: true)
        },
        S("utimensat UTIME_NOW", [file("a")]) { r in
            r.utimensat("a", .at(1), .at(1)); r.stat("a"); r.utimensat("a", .now, .now); r.stat("a")
        },
        S("utimensat UTIME_OMIT both changes nothing", [file("a")]) { r in
            r.stat("a"); r.utimensat("a", .omit, .omit); r.stat("a")
        },
        S("utimensat atime only", [file("a")]) { r in r.stat("a"); r.utimensat("a", .now, .omit); r.stat("a"); r.utimensat("a", .at(9), .omit); r.stat("a") },
        S("utimensat AT_SYMLINK_NOFOLLOW", [file("f"), symlink("l", "f")]) { r in
            r.utimensat("l", .at(10), .at(20), nofollow: true); r.stat("l", exactTimes: true); r.stat("f")
            r.utimensat("l", .at(30), .at(40)); r.stat("f", exactTimes: true)
        },
        S("futimens through a descriptor", [file("a")]) { r in
            let fd = r.open("a", O_RDONLY); r.futimens(fd, .at(50), .at(60)); r.fstat(fd, "a", exactTimes: true); r.close(fd)
        },
        S("utimensat on a directory and a fifo", [dir("d"), fifo("p")]) { r in
            r.utimensat("d", .at(70), .at(80)); r.stat("d", exactTimes: true); r.utimensat("p", .at(1), .at(2)); r.stat("p", exactTimes: true)
        },
        S("non-root: utimensat permissions", [file("w", mode: 0o666), file("ro", mode: 0o644), file("mine", mode: 0o444, uid: nobody)]) { r in
            r.asUser {
                r.utimensat("w", .now, .now); r.utimensat("w", .at(1), .at(1)); r.utimensat("ro", .now, .now)
                r.utimensat("mine", .at(3), .at(3)); r.utimensat("mine", .now, .now); r.utimensat("w", .omit, .now)
            }
            r.stat("w"); r.stat("mine")
        },
        S("setxattr, getxattr, listxattr", [file("a")]) { r in
            r.stat("a"); r.setxattr("a", "user.one", "1"); r.stat("a"); r.getxattr("a", "user.one"); r.listxattr("a")
            r.setxattr("a", "user.two", "22"); r.listxattr("a"); r.getxattr("a", "user.missing")
        },
        S("setxattr create and replace flags", [file("a", xattrs: ["user.k": "v"])]) { r in
            r.setxattr("a", "user.k", "w", xattrCreate); r.setxattr("a", "user.n", "w", xattrReplace)
            r.setxattr("a", "user.k", "w", xattrReplace); r.getxattr("a", "user.k"); r.setxattr("a", "user.n", "n", xattrCreate); r.listxattr("a")
        },
        S("removexattr", [file("a", xattrs: ["user.k": "v", "user.j": "j"])]) { r in
            r.listxattr("a"); r.stat("a"); r.removexattr("a", "user.k"); r.stat("a"); r.listxattr("a"); r.removexattr("a", "user.k")
            r.getxattr("a", "user.k"); r.getxattr("a", "user.j")
        },
        S("xattrs on a directory", [dir("d")]) { r in
            r.setxattr("d", "user.x", "1"); r.getxattr("d", "user.x"); r.listxattr("d"); r.removexattr("d", "user.x"); r.listxattr("d")
        },
        S("user xattrs on a symlink and a fifo", [symlink("l", "t"), fifo("p")]) { r in
            r.setxattr("l", "user.x", "1"); r.setxattr("p", "user.x", "1"); r.listxattr("l")
        },
        S("fsetxattr through a descriptor", [file("a")]) { r in
            let fd = r.open("a", O_RDONLY); r.fsetxattr(fd, "user.f", "v"); r.close(fd); r.getxattr("a", "user.f")
        },
        S("non-root: user xattrs need write permission", [file("ro", mode: 0o644, xattrs: ["user.k": "v"]), file("w", mode: 0o666)]) { r in
            r.asUser { r.getxattr("ro", "user.k"); r.setxattr("ro", "user.x", "1"); r.removexattr("ro", "user.k"); r.setxattr("w", "user.x", "1") }
            r.listxattr("ro"); r.listxattr("w")
        },
        S("non-root: trusted xattrs are refused", [file("a", mode: 0o666)]) { r in
            r.asUser { r.setxattr("a", "trusted.x", "1"); r.getxattr("a", "trusted.x") }
        },
        S("access as root", [file("none", mode: 0), file("x", mode: 0o100), dir("d", mode: 0)]) { r in
            for p in ["none", "x", "d", "missing"] { for m in [F_OK, R_OK, W_OK, X_OK] { r.access(p, m) } }
        },
        S("access as non-root", [file("r", mode: 0o644), file("w", mode: 0o622), file("x", mode: 0o711), file("mine", mode: 0o400, uid: nobody)]) { r in
            r.asUser { for p in ["r", "w", "x", "mine"] { for m in [F_OK, R_OK, W_OK, X_OK] { r.access(p, m) } } }
        },
        S("stat of files of every type", [file("f", "abc"), dir("d"), symlink("l", "f"), fifo("p"), chardev("c", 4, 5)]) { r in
            for p in ["", "f", "d", "l", "p", "c"] { r.stat(p) }; r.stat("l", follow: true)
        },
        S("directory link counts follow subdirectories", [dir("a"), dir("a/b"), dir("a/c"), file("a/f")]) { r in
            r.stat("a"); r.mkdir("a/n"); r.stat("a"); r.rmdir("a/b"); r.stat("a"); r.rename("a/c", "c"); r.stat("a"); r.stat("")
            r.rename("c", "a/c"); r.stat("a")
        },
    ] }
}
