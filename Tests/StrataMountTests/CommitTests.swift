#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataOCI
import StrataSystem
import StrataTestSupport

/// A base image built with umoci, unpacked as the lower of a kernel overlayfs mount: the
/// changes made in that mount leave a genuine overlayfs upper directory, independent of
/// strata's own upper implementation, for `strata commit` to turn into a layer.
final class OverlayCommitFixture {
    let temp: TempDirectory
    var layout: String { temp.child("layout") }
    var lower: String { temp.child("lower/rootfs") }
    var upper: String { temp.child("upper") }
    var merged: String { temp.child("merged") }
    var cache: String { temp.child("cache") }
    private var overlayMounted = false

    /// The base image (tag "base") holds what `populate` (a shell script run in its rootfs) makes.
    init(populate: String = OverlayCommitFixture.baseTree) throws {
        temp = try TempDirectory(prefix: "strata-test-commit-")
        try Umoci.initLayout(layout)
        try Umoci.newImage(layout: layout, tag: "base")
        let bundle = temp.child("build")
        let rootfs = try Umoci.unpack(layout: layout, tag: "base", into: bundle)
        try Self.sh("cd \(rootfs) && \(populate)")
        try Umoci.repack(layout: layout, tag: "base", bundle: bundle)
        try Umoci.removeBundle(bundle)
        try Umoci.unpack(layout: layout, tag: "base", into: temp.child("lower"))
        for dir in [upper, temp.child("work"), merged] { try FileIO.makeDirectories(dir) }
    }

    deinit {
        if overlayMounted { _ = try? Command.run("/bin/umount", ["-l", merged]) }
    }

    static let baseTree = """
        mkdir -p a/b d/e r/sub/deep keep gone/x &&
        echo hi > a/f && echo x > r/sub/g && ln r/sub/g r/sub/g2 && echo deep > r/sub/deep/h &&
        echo y > d/z && echo z > d/e/z2 && echo k > keep/k && echo m > keep/mod &&
        setfattr -n user.base -v 1 keep/k && ln -s ../a/f keep/sl && echo gone > gone/x/f &&
        touch -d @1600000000.5 keep/k
        """

    /// Mounts the overlay, runs `changes` in it, captures what it shows, unmounts.
    func change(_ changes: String, options: String = "redirect_dir=on,index=off,metacopy=off") throws -> TreeSnapshot {
        try Command.check("/bin/mount", ["-t", "overlay", "overlay", "-o",
                                         "lowerdir=\(lower),upperdir=\(upper),workdir=\(temp.child("work")),\(options)", merged])
        overlayMounted = true
        defer {
            if (try? Command.check("/bin/umount", [merged])) != nil { overlayMounted = false }
        }
        try Self.sh("cd \(merged) && \(changes)")
        return try TreeSnapshot.capture(root: merged)
    }

    @discardableResult
    func commit(_ tag: String, extra: [String] = [], environment: [String: String]? = nil) throws -> CommandResult {
        let args = ["commit", "--cache", cache] + extra + [upper, "\(layout):base", tag]
        return try Command.run(try StrataBinary.path(), args, environment: environment, timeout: 300)
    }

    func newLayer(_ tag: String) throws -> Descriptor {
        try #require(try ImageResolver.resolve(reference: "\(layout):\(tag)").manifest.layers.last, "\(tag) has no layers")
    }

    /// The top layer of `tag` decompressed by the system's own tool (`zstd -dc`, `gzip -dc`),
    /// not by Strata's decoder, with the diff_id its config records for it.
    func decodedTopLayer(_ tag: String) throws -> (tar: [UInt8], diffID: String) {
        let image = try ImageResolver.resolve(reference: "\(layout):\(tag)")
        let layer = try #require(image.manifest.layers.last, "\(tag) has no layers")
        let diffID = try #require(image.config.rootfs.diffIDs.last, "\(tag) has no diff_ids")
        let blob = "\(layout)/blobs/sha256/\(layer.digest.hex)"
        let tool = layer.mediaType == MediaType.ociLayerZstd ? "zstd" : "gzip"
        let tar = try Command.check(Mounts.tool(tool), ["-dc", blob], timeout: 300).stdout
        return (tar, diffID.description)
    }

    /// `umoci unpack` of `tag`, compared with `expected`.
    func umociDifferences(_ tag: String, expected: TreeSnapshot) throws -> [String] {
        let bundle = temp.child("unpacked-\(tag)")
        let rootfs = try Umoci.unpack(layout: layout, tag: tag, into: bundle)
        defer { try? Umoci.removeBundle(bundle) }
        return Self.compare(try TreeSnapshot.capture(root: rootfs), expected)
    }

    /// A strata mount of `tag`, compared with `expected`; unmounted before returning.
    func mountDifferences(_ tag: String, expected: TreeSnapshot) throws -> [String] {
        let guardian = try MountGuard(image: "\(layout):\(tag)", mountpoint: temp.child("mnt-\(tag)"), extraArgs: ["--cache", cache])
        defer { try? guardian.unmount() }
        return Self.compare(try TreeSnapshot.capture(root: guardian.mountpoint), expected)
    }

    /// The root is left out: an overlay's root is the upper directory itself, which a layer
    /// does not carry. Directory link counts depend on the filesystem.
    static func compare(_ actual: TreeSnapshot, _ expected: TreeSnapshot) -> [String] {
        actual.differences(from: expected, ignoring: [.dirNlink]).filter { !$0.hasPrefix(".: ") }
    }

    static func sh(_ script: String) throws {
        try Command.check("/bin/sh", ["-c", "set -e; " + script])
    }

    static var available: Bool {
        getuid() == 0 && Umoci.isAvailable && StrataBinary.isBuilt
            && ((try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8))?.contains("overlay") ?? false)
    }
}

@Suite(.enabled(if: OverlayCommitFixture.available, "needs root, umoci, kernel overlayfs and the strata binary"),
       .serialized, .mountTimeLimit)
struct CommitTests {
    /// One of each: add, modify, chmod, chown, delete file, delete directory, opaque directory,
    /// renamed lower directory, hardlinks, user xattrs, devices, fifo, symlinks.
    static let everyKindOfChange = """
        echo added > added && mkdir -p newdir/sub && echo n > newdir/sub/f &&
        echo modified >> keep/mod && chmod 640 keep/k && chown 123:456 keep/k && chown -h 7:8 keep/sl &&
        chmod 1777 a/b &&
        rm a/f && rm -rf gone &&
        rm -rf d && mkdir d && echo new > d/n && mkdir d/e && touch d/e/only-new &&
        mv r r2 && echo g3 > r2/sub/g3 && rm r2/sub/deep/h &&
        ln added added-link && ln added newdir/sub/third-link &&
        setfattr -n user.k -v value added && setfattr -n user.dir -v 1 newdir &&
        mknod cdev c 1 3 && mknod bdev b 7 0 && mkfifo fifo &&
        ln -s target newlink && ln -s /abs/olute newdir/abslink &&
        touch -h -d @1700000000.25 newlink && touch -d @1500000000 added
        """

    @Test func everyKindOfChangeGzip() throws {
        let f = try OverlayCommitFixture()
        let expected = try f.change(Self.everyKindOfChange)
        // The overlay really showed the changes (so equal trees mean something).
        #expect(expected.entry("gone") == nil && expected.entry("a/f") == nil && expected.entry("r") == nil)
        #expect(expected.entry("r2/sub/deep") != nil && expected.entry("r2/sub/deep/h") == nil)
        #expect(expected.entry("d/z") == nil && expected.entry("d/n") != nil && expected.entry("keep/k")?.uid == 123)
        #expect(expected.entry("added")?.xattrs.isEmpty == false && expected.entry("cdev")?.type == .charDevice)
        #expect(expected.hardlinkGroups.contains(Set(["added", "added-link", "newdir/sub/third-link"].map { Array($0.utf8) })))
        #expect(expected.hardlinkGroups.contains(Set(["r2/sub/g", "r2/sub/g2"].map { Array($0.utf8) })))
        let result = try f.commit("new", extra: ["--message", "every change"])
        #expect(result.succeeded, "\(result.stderr)")
        #expect(try f.umociDifferences("new", expected: expected) == [])
        #expect(try f.mountDifferences("new", expected: expected) == [])
        let image = try ImageResolver.resolve(reference: "\(f.layout):new")
        #expect(image.config.history?.last?.comment == "every change")
        #expect(image.config.rootfs.diffIDs.count == 2)
        #expect(image.layers.last?.descriptor.mediaType == MediaType.ociLayerGzip)
        #expect(result.stdoutString == image.manifestDigest.description + "\n")
        // The base tag is untouched.
        #expect(try ImageResolver.resolve(reference: "\(f.layout):base").config.rootfs.diffIDs.count == 1)
    }

    @Test func renamesAcrossDirectoriesAndNestedZstd() throws {
        let f = try OverlayCommitFixture()
        // keep → a/b/moved: an absolute redirect; r/sub renamed inside renamed r: nested.
        let expected = try f.change("""
            mv keep a/b/moved && echo more >> a/b/moved/mod &&
            mv r/sub r/sub2 && mv r r3 && touch r3/sub2/deep/new &&
            mv d/e d/e2 && rm -rf d/e2/z2
            """)
        let result = try f.commit("moved")
        #expect(result.succeeded, "\(result.stderr)")
        #expect(try f.umociDifferences("moved", expected: expected) == [])
        #expect(try f.mountDifferences("moved", expected: expected) == [])
        // umoci 0.4.7 cannot read zstd layers, and a strata mount reads them with strata's
        // own decoder: `zstd -dc` decodes the layer instead, and the tar must be the one the
        // gzip commit holds (byte for byte: its diff_id, which umoci verified above).
        let zstd = try f.commit("moved-zstd", extra: ["--compression", "zstd"])
        #expect(zstd.succeeded, "\(zstd.stderr)")
        #expect(try f.newLayer("moved-zstd").mediaType == MediaType.ociLayerZstd)
        let fromZstd = try f.decodedTopLayer("moved-zstd")
        let fromGzip = try f.decodedTopLayer("moved")
        #expect("sha256:" + sha(fromZstd.tar) == fromZstd.diffID)
        #expect("sha256:" + sha(fromGzip.tar) == fromGzip.diffID)
        #expect(fromZstd.tar == fromGzip.tar)
        #expect(try f.mountDifferences("moved-zstd", expected: expected) == [])
    }

    /// metacopy=on: chmod/chown copy up metadata only, the data stays in the lower (also after
    /// a rename of the file, which then carries a redirect).
    @Test func metacopyFilesTakeTheirDataFromTheLower() throws {
        let f = try OverlayCommitFixture()
        let expected = try f.change("chmod 600 keep/mod && chown 5:6 r/sub/deep/h && mv keep/mod a/b/mod-moved",
                                    options: "redirect_dir=on,metacopy=on,index=on")
        let result = try f.commit("meta")
        #expect(result.succeeded, "\(result.stderr)")
        #expect(try f.umociDifferences("meta", expected: expected) == [])
        #expect(try f.mountDifferences("meta", expected: expected) == [])
    }

    @Test func uncompressedAndEmptyUpper() throws {
        let f = try OverlayCommitFixture()
        let expected = try f.change("true")
        let result = try f.commit("same", extra: ["--compression", "none"])
        #expect(result.succeeded, "\(result.stderr)")
        #expect(try f.newLayer("same").mediaType == MediaType.ociLayerTar)
        #expect(try f.umociDifferences("same", expected: expected) == [])
        #expect(try f.mountDifferences("same", expected: expected) == [])
    }

    @Test func sameUpperGivesTheSameLayer() throws {
        let f = try OverlayCommitFixture()
        _ = try f.change(Self.everyKindOfChange)
        for compression in ["gzip", "zstd", "none"] {
            try f.commit("\(compression)-1", extra: ["--compression", compression])
            try f.commit("\(compression)-2", extra: ["--compression", compression])
            let (one, two) = (try f.newLayer("\(compression)-1"), try f.newLayer("\(compression)-2"))
            #expect(one.digest == two.digest, "\(compression)")
        }
        // With a fixed commit time the whole image is reproducible too.
        var env = ProcessInfo.processInfo.environment
        env["SOURCE_DATE_EPOCH"] = "1700000000"
        try f.commit("fixed-1", environment: env)
        try f.commit("fixed-2", environment: env)
        let one = try ImageResolver.resolve(reference: "\(f.layout):fixed-1")
        let two = try ImageResolver.resolve(reference: "\(f.layout):fixed-2")
        #expect(one.manifestDigest == two.manifestDigest)
        #expect(one.config.created == "2023-11-14T22:13:20Z")
        // gzip header: MTIME (bytes 4..7) is zero, not the time of the commit.
        let blob = try FileIO.readAll("\(f.layout)/blobs/sha256/\(try f.newLayer("gzip-1").digest.hex)")
        #expect(Array(blob[0..<2]) == [0x1f, 0x8b] && Array(blob[4..<8]) == [0, 0, 0, 0])
    }

    @Test func badArgumentsNameTheProblem() throws {
        let f = try OverlayCommitFixture(populate: "true")
        let missing = try f.commit("x", extra: ["--compression", "lz4"])
        #expect(!missing.succeeded && missing.stderr.contains("lz4"))
        let noUpper = try Command.run(try StrataBinary.path(), ["commit", f.temp.child("nope"), "\(f.layout):base", "x"])
        #expect(!noUpper.succeeded && noUpper.stderr.contains("nope"))
        let noTag = try Command.run(try StrataBinary.path(), ["commit", f.upper, "\(f.layout):nosuch", "x"])
        #expect(!noTag.succeeded && noTag.stderr.contains("nosuch"))
    }
}
