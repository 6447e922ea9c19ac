#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// A real distribution tree made from this machine's own installed Debian packages: every
/// path `dpkg -L` lists for `packages` (ELF binaries and the libraries they load, usr-merge
/// symlinks, hardlinks such as perl, setuid-root programs such as su and passwd, conffiles),
/// copied with owners, modes and xattrs kept. No network and nothing kept between runs: it is
/// built inside the test's own temp directory in a few seconds.
public enum HostRootfs {
    /// Packages every machine that passes scripts/deps has (essential, or listed there).
    public static let packages = [
        "base-files", "libc6", "coreutils", "bash", "dash", "util-linux", "mount", "passwd", "login",
        "tar", "gzip", "zstd", "libzstd1", "findutils", "grep", "sed", "perl-base", "dpkg", "debianutils",
        "diffutils", "libacl1", "libattr1", "libselinux1", "libpcre2-8-0", "libcap2", "libcap2-bin",
        "procps", "busybox-static", "libssl3",
    ]

    /// Copies the packages' files into `rootfs` (which must exist). Paths listed through a
    /// usr-merge symlink (/bin/su) are copied once, at their real place, beside the symlink.
    public static func copy(into rootfs: String, packages: [String] = packages) throws {
        let script = #"""
            set -eu
            list="$R.list"
            dpkg-query -L "$@" | python3 -c '
            import os, sys
            seen = set()
            for line in sys.stdin:
                p = line.rstrip("\n")
                if not p.startswith("/") or p == "/.": continue
                real = os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
                if real not in seen and os.path.lexists(real):
                    seen.add(real)
                    print(real[1:])
            ' | sort > "$list"
            tar --xattrs --xattrs-include='*' --warning=no-file-changed --no-recursion -C / -cf - -T "$list" \
                | tar --xattrs --xattrs-include='*' --same-owner -xpf - -C "$R"
            rm -f "$list"
            """#
        try Command.check("/bin/sh", ["-c", script, "sh"] + packages,
                          environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "R": rootfs], timeout: 600)
    }

    /// Fails with the missing package's name when one of `packages` is not installed.
    public static func requireInstalled(_ packages: [String] = packages) throws {
        let r = try Command.run(Mounts.tool("dpkg-query"), ["-W", "-f", "${Package} ${Status}\n"] + packages)
        let missing = packages.filter { p in !r.stdoutString.split(separator: "\n").contains { $0 == "\(p) install ok installed" } }
        if !missing.isEmpty { throw HarnessError("not installed: \(missing.joined(separator: " ")) (scripts/deps installs them)") }
    }
}
