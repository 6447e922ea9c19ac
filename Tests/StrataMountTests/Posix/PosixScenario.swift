#if canImport(Glibc)
import Glibc
#endif
import StrataTestSupport

/// A file a scenario starts with, relative to the scenario's directory.
struct PosixEntry {
    enum Kind { case file(String), dir, symlink(String), fifo, char(UInt32, UInt32), block(UInt32, UInt32), hardlink(String) }
    var path: String
    var kind: Kind
    var mode: UInt32
    var uid: UInt32 = 0
    var gid: UInt32 = 0
    var xattrs: [String: String] = [:]
}

/// One conformance scenario: a directory (mode, owner) holding `entries`, and the calls to make.
struct PosixScenario {
    var name: String
    var dirMode: UInt32 = 0o755
    var dirUID: UInt32 = 0
    var dirGID: UInt32 = 0
    var entries: [PosixEntry] = []
    var steps: (PosixTrace) -> Void
}

// Short constructors for the table.
func file(_ p: String, _ content: String = "", mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
          xattrs: [String: String] = [:]) -> PosixEntry {
    PosixEntry(path: p, kind: .file(content), mode: mode, uid: uid, gid: gid, xattrs: xattrs)
}
func dir(_ p: String, mode: UInt32 = 0o755, uid: UInt32 = 0, gid: UInt32 = 0) -> PosixEntry {
    PosixEntry(path: p, kind: .dir, mode: mode, uid: uid, gid: gid)
}
func symlink(_ p: String, _ target: String, uid: UInt32 = 0, gid: UInt32 = 0) -> PosixEntry {
    PosixEntry(path: p, kind: .symlink(target), mode: 0o777, uid: uid, gid: gid)
}
func fifo(_ p: String, mode: UInt32 = 0o644) -> PosixEntry { PosixEntry(path: p, kind: .fifo, mode: mode) }
func chardev(_ p: String, _ major: UInt32, _ minor: UInt32) -> PosixEntry { PosixEntry(path: p, kind: .char(major, minor), mode: 0o644) }
func hardlink(_ p: String, _ target: String) -> PosixEntry { PosixEntry(path: p, kind: .hardlink(target), mode: 0) }

/// Putting a scenario's starting state in place: by system calls (on the host file system, or
/// through the mount for entries new in the upper), or as image layer entries (lower).
enum PosixSetup {
    /// Creates the entries under `base` as root; `makeBase` creates `base` itself too.
    static func materialize(_ s: PosixScenario, at base: String, makeBase: Bool) throws {
        func check(_ r: Int32, _ what: String) throws {
            if r != 0 { throw HarnessError("setup \(s.name): \(what): \(String(cString: strerror(errno)))") }
        }
        if makeBase { try check(mkdir(base, 0o700), "mkdir \(base)") }
        for e in s.entries {
            let p = base + "/" + e.path
            switch e.kind {
            case .file(let content):
                let fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
                try check(fd < 0 ? -1 : 0, "create \(p)")
                if !content.isEmpty { _ = write(fd, content, content.utf8.count) }
                close(fd)
            case .dir: try check(mkdir(p, 0o700), "mkdir \(p)")
            case .symlink(let t): try check(Glibc.symlink(t, p), "symlink \(p)")
            case .fifo: try check(mkfifo(p, 0o600), "mkfifo \(p)")
            case .char(let ma, let mi): try check(mknod(p, S_IFCHR | 0o600, dev_t((ma << 8) | mi)), "mknod \(p)")
            case .block(let ma, let mi): try check(mknod(p, S_IFBLK | 0o600, dev_t((ma << 8) | mi)), "mknod \(p)")
            case .hardlink(let t): try check(link(base + "/" + t, p), "link \(p)")
            }
        }
        // Owners before modes: chown clears set-id bits.
        for e in s.entries {
            if case .hardlink = e.kind { continue }
            let p = base + "/" + e.path
            try check(lchown(p, e.uid, e.gid), "lchown \(p)")
            if case .symlink = e.kind { continue }
            try check(chmod(p, mode_t(e.mode)), "chmod \(p)")
            for (name, value) in e.xattrs { try check(PosixCalls.lsetxattr(p, name, value, 0), "setxattr \(p)") }
        }
        if makeBase {
            try check(chown(base, s.dirUID, s.dirGID), "chown \(base)")
            try check(chmod(base, mode_t(s.dirMode)), "chmod \(base)")
        }
    }

    /// The scenario's directory at `base` (a path in the image) and, with `entries`, its files.
    static func layerItems(_ s: PosixScenario, base: String, entries: Bool) -> [TarItem] {
        var items = [Items.dir(base, mode: s.dirMode, uid: s.dirUID, gid: s.dirGID)]
        guard entries else { return items }
        for e in s.entries {
            let p = base + "/" + e.path
            let xattrs = e.xattrs.mapValues { Array($0.utf8) }
            switch e.kind {
            case .file(let c): items.append(Items.file(p, c, mode: e.mode, uid: e.uid, gid: e.gid, xattrs: xattrs))
            case .dir: items.append(Items.dir(p, mode: e.mode, uid: e.uid, gid: e.gid, xattrs: xattrs))
            case .symlink(let t): items.append(Items.symlink(p, to: t, uid: e.uid, gid: e.gid))
            case .fifo: items.append(Items.fifo(p, mode: e.mode))
            case .char(let ma, let mi): items.append(Items.charDevice(p, major: ma, minor: mi, mode: e.mode))
            case .block(let ma, let mi): items.append(Items.blockDevice(p, major: ma, minor: mi, mode: e.mode))
            case .hardlink(let t): items.append(Items.hardlink(p, to: base + "/" + t))
            }
        }
        return items
    }
}
