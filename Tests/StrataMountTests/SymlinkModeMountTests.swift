#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// Symlinks on Linux are always mode 0777 (ext4, overlayfs, umoci), whatever their tar header
/// says (issue 10, point 8): some tar writers put 0644 there.
@Suite(.mountTimeLimit, .enabled(if: canCompareMounts, "needs root, umoci and a built strata"))
struct SymlinkModeMountTests {
    static let layers: [[TarItem]] = [
        [Items.dir("a"), Items.file("a/target", "t"), Items.symlink("a/link", to: "target", mode: 0o644),
         Items.dir("b"), Items.symlink("b/link", to: "../a/target", mode: 0o600),
         Items.symlink("b/sticky", to: "x", mode: 0o1644)],
        // A later layer replaces a symlink with another odd-mode one.
        [Items.symlink("a/link", to: "target", mode: 0o640)],
    ]

    /// lstat mode bits, or nil when lstat fails.
    func mode(_ path: String) -> UInt32? {
        var st = stat()
        guard lstat(path, &st) == 0, st.st_mode & S_IFMT == S_IFLNK else { return nil }
        return st.st_mode & 0o7777
    }

    /// `b` is listed before its entries are looked up (their attributes then come from
    /// READDIRPLUS); `a/link` is looked up directly.
    func expectAll0777(_ mnt: String) throws {
        #expect(mode(mnt + "/a/link") == 0o777)
        let listed = try #require(opendir(mnt + "/b"))
        while readdir(listed) != nil {}
        closedir(listed)
        #expect(mode(mnt + "/b/link") == 0o777)
        #expect(mode(mnt + "/b/sticky") == 0o777)
    }

    @Test func readOnlyMountMatchesUmoci() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: Self.layers)
        let c = try expectSameAsUmoci(b)
        for path in ["a/link", "b/link", "b/sticky"] { #expect(c.mounted.entry(path)?.mode == 0o777, "\(path)") }

        let guardian = try MountGuard(image: b.reference("test"), mountpoint: temp.child("mnt"),
                                      extraArgs: ["--cache", temp.child("cache")])
        defer { withExtendedLifetime(guardian) {} }
        try expectAll0777(temp.child("mnt"))
        try guardian.unmount()
    }

    @Test func writableMountShows0777() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: Self.layers)
        let guardian = try MountGuard(image: b.reference("test"), mountpoint: temp.child("mnt"),
                                      extraArgs: ["--cache", temp.child("cache"), "--upper", temp.child("upper")])
        defer { withExtendedLifetime(guardian) {} }
        let mnt = temp.child("mnt")
        try expectAll0777(mnt)
        // A copied-up symlink (its owner changed) keeps 0777 too.
        #expect(lchown(mnt + "/b/link", 5, 6) == 0)
        #expect(mode(mnt + "/b/link") == 0o777)
        try guardian.unmount()
    }
}
