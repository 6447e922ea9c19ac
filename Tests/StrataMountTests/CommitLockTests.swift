#if canImport(Glibc)
import Glibc
#endif
import StrataSystem
import StrataTestSupport
import Testing

/// `strata commit` refuses an upper that a `strata mount --upper` still holds (writes in
/// flight could tear the layer); --force overrides; once unmounted it commits.
@Suite(.mountTimeLimit, .enabled(if: SafetyTestSupport.available, "needs root, /dev/fuse and the strata binary"), .serialized)
struct CommitLockTests {
    @Test func aMountedUpperIsRefusedUnlessForced() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try SafetyTestSupport.smallImage(temp)
        let upper = temp.child("upper")
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: image, mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache"), "--upper", upper])
        defer { try? mount.unmount() }
        try FileIO.writeAtomically(mnt + "/data/new", Array("new\n".utf8))

        let refused = try StrataBinary.run(["commit", upper, image, "refused"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("upper \(upper) is in use by a strata mount"), "\(refused.stderr)")
        #expect(refused.stdoutString.isEmpty)
        #expect(!(try StrataBinary.run(["inspect", temp.child("layout") + ":refused"])).succeeded, "no tag was written")

        let forced = try StrataBinary.run(["commit", "--force", upper, image, "forced"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect(forced.stdoutString.hasPrefix("sha256:"))

        try mount.unmount()
        let committed = try StrataBinary.run(["commit", upper, image, "after"])
        #expect(committed.status == 0, "\(committed.stderr)")
        #expect(committed.stdoutString.hasPrefix("sha256:"))
        // The commit holds the lock only while it runs: the upper mounts again.
        let again = try MountGuard(image: temp.child("layout") + ":after", mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache"), "--upper", upper])
        defer { try? again.unmount() }
        #expect(try FileIO.readAll(mnt + "/data/new") == Array("new\n".utf8))
        try again.unmount()
    }

    @Test func commitHelpDocumentsForceAsUnsafe() throws {
        let help = try StrataBinary.run(["commit", "--help"]).stdoutString
        #expect(help.contains("--force") && help.contains("Unsafe"))
    }
}
