#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// A writable mount keeps working when /proc goes away while it serves (issue 10, point 10):
/// chmod, utimens and xattrs of the upper use descriptor calls, not /proc/self/fd.
///
/// The mount lives in a private mount namespace (`unshare --mount`) whose /proc is unmounted
/// once the daemon is up; a mount made there is not visible outside, so the writes and
/// their checks run in the namespace too, and the script unmounts before it ends.
@Suite(.mountTimeLimit, .enabled(if: getuid() == 0 && StrataBinary.isBuilt && access("/usr/bin/unshare", X_OK) == 0,
                "needs root, unshare and a built strata"))
struct NoProcMountTests {
    @Test func upperWritesWithoutProc() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.dir("d"), Items.file("d/f", "lower", mode: 0o644), Items.file("d/o", "lower"), Items.symlink("d/l", to: "f"),
                                 Items.dir("gone"), Items.file("gone/x", "x"), Items.dir("moved"), Items.file("moved/y", "y")])
        try b.write(tag: "t")
        let mnt = try temp.makeDirectory("mnt")
        let strata = try StrataBinary.path()
        let script = """
        mnt='\(mnt)'
        cleanup() {
            cd /
            [ -e /proc/self ] || mount -t proc proc /proc
            umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
        }
        trap cleanup EXIT
        '\(strata)' mount --cache '\(temp.child("cache"))' --upper '\(temp.child("upper"))' '\(b.reference("t"))' "$mnt" \
            >'\(temp.child("mount.log"))' 2>&1 || exit 1
        umount -l /proc || exit 1
        [ ! -e /proc/self ] || { echo "/proc is still mounted" >&2; exit 1; }
        cd "$mnt" || exit 1
        # Each step on its own (no -e): the checks below say which ones failed.
        printf new > new; chmod 0604 new; touch -m -d @1234567890 new        # create, chmod, utimens
        mkdir nd; chmod 0701 nd; touch -m -d @1111111111 nd                  # a directory's descriptor
        chmod 0600 d/f                                                       # copy-up, then chmod
        touch -h -m -d @1222222222 d/l                                       # a copied-up symlink's times
        setfattr -n user.k -v v new; setfattr -n user.k -v w nd
        rm -r gone; mkdir gone                                               # opaque directory
        mv moved moved2                                                      # redirect
        # An orphan: read-only handle of a lower file, written through another, then unlinked.
        # The first read through the first handle reopens the upper copy, which has no name left.
        exec 3<d/o; exec 4>>d/o; printf X >&4; exec 4>&-; rm d/o
        echo "orphan=$(cat <&3)"; exec 3<&-
        echo "new=$(stat -c '%a %Y' new) $(getfattr --only-values -n user.k new)"
        echo "nd=$(stat -c '%a %Y' nd) $(getfattr --only-values -n user.k nd)"
        echo "f=$(stat -c '%a' d/f) $(cat d/f)"
        echo "l=$(stat -c '%F %Y' d/l)"
        echo "gone=$(ls -A gone | wc -l)"
        echo "moved2=$(ls moved2)"
        """
        let r = try Command.run("/usr/bin/unshare", ["--mount", "--propagation", "private", "/bin/sh", "-c", script],
                                timeout: 120)
        let log = (try? FileIO.readAll(temp.child("mount.log"))).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(r.succeeded && r.stderr.isEmpty, "exit \(r.status)\nstdout:\n\(r.stdoutString)\nstderr:\n\(r.stderr)\nmount:\n\(log)")
        let lines = Dictionary(r.stdoutString.split(separator: "\n").compactMap { line -> (String, String)? in
            guard let eq = line.firstIndex(of: "=") else { return nil }
            return (String(line[..<eq]), String(line[line.index(after: eq)...]))
        }, uniquingKeysWith: { a, _ in a })
        #expect(lines["new"] == "604 1234567890 v", "\(r.stdoutString)\n\(r.stderr)")
        #expect(lines["nd"] == "701 1111111111 w")
        #expect(lines["f"] == "600 lower")
        #expect(lines["l"] == "symbolic link 1222222222")
        #expect(lines["gone"] == "0")
        #expect(lines["moved2"] == "y")
        #expect(lines["orphan"] == "lowerX")
        // Nothing of the namespace's mount is left behind (the daemon went with it).
        #expect(MountTable.mounts(under: temp.path).isEmpty)
    }
}
