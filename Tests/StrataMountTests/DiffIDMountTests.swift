#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataOCI
import StrataSystem
import StrataTar
import StrataTestSupport

/// Issue 10, point 4: a layer whose uncompressed tar does not hash to the image's
/// `rootfs.diff_ids[i]` is refused (umoci: "diffid mismatch"), cold or from a warm cache.
@Suite(.mountTimeLimit, .enabled(if: getuid() == 0 && StrataBinary.isBuilt, "needs root and a built strata"))
struct DiffIDMountTests {
    static let base: [TarItem] = [Items.dir("etc"), Items.file("etc/who", "base\n")]
    static let shared: [TarItem] = [Items.file("etc/shared", String(repeating: "a layer two images share\n", count: 8000))]

    /// `strata ARGS` must fail with one stderr line saying "diff_id mismatch" and naming
    /// every word of `mentions`; nothing may stay mounted under `temp`.
    @discardableResult
    func expectDiffIDFailure(_ args: [String], in temp: TempDirectory, mentions: [String],
                             sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        let result = try StrataBinary.run(args, timeout: 120)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(result.status != 0 && !result.timedOut, "strata \(args.joined(separator: " ")) exited \(result.status)",
                sourceLocation: sourceLocation)
        #expect(lines.count == 1, "stderr is not one line:\n\(result.stderr)", sourceLocation: sourceLocation)
        for word in ["diff_id mismatch"] + mentions {
            #expect(result.stderr.contains(word), "stderr does not name \(word):\n\(result.stderr)", sourceLocation: sourceLocation)
        }
        let left = MountTable.mounts(under: temp.path)
        #expect(left.isEmpty, "left mounted: \(left)", sourceLocation: sourceLocation)
        for m in left { try? Mounts.forceUnmount(m) }
        return result.stderr
    }

    @Test(arguments: [ImageBuilder.Compression.gzip, ImageBuilder.Compression.zstd, ImageBuilder.Compression.none])
    func wrongDiffIDIsRefusedColdAndNothingIsCached(_ compression: ImageBuilder.Compression) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: Self.base, compression: compression)
        let liar = try b.addLayer(entries: Self.shared, compression: compression)
        let claimed = Digest.sha256(of: Array("some other tar".utf8))
        b.layers[1].diffID = claimed
        try b.write(tag: "lie")
        let cache = temp.child("cache")
        let mentions = [liar.descriptor.digest.hex, "layer 1 ", claimed.description, liar.diffID.description]
        try expectDiffIDFailure(["mount", "--cache", cache, b.reference("lie"), try temp.makeDirectory("mnt")],
                                in: temp, mentions: mentions)
        try expectDiffIDFailure(["index", "--cache", cache, b.reference("lie")], in: temp, mentions: mentions)
        // No index (nor verified diff_id) stays for the lying layer; the honest one is kept.
        #expect(!FileIO.exists("\(cache)/index/sha256/\(liar.descriptor.digest.hex)"))
        #expect(!FileIO.exists("\(cache)/diffid/sha256/\(liar.descriptor.digest.hex)"))
        let honest = b.layers[0].descriptor.digest.hex
        #expect(try FileIO.readAll("\(cache)/diffid/sha256/\(honest)") == Array("\(b.layers[0].diffID)\n".utf8))
    }

    /// Two images share a blob: the first (honest) indexes it; the second claims another
    /// diff_id for it and must fail although the mount reads no layer data. The honest
    /// image, and another honest one on the same blob, still mount from the same cache.
    @Test func warmCacheStillChecksTheClaimedDiffID() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: Self.base)
        let layer = try b.addLayer(entries: Self.shared)
        try b.write(tag: "honest")
        let again = try ImageBuilder(layout: temp.child("layout"))   // same blobs, same diff_ids
        again.layers = b.layers
        try again.write(tag: "twin", config: .init(cmd: ["/bin/true"]))
        let cache = temp.child("cache")
        let indexed = try StrataBinary.run(["index", "--cache", cache, b.reference("honest")])
        #expect(indexed.succeeded, "\(indexed.stderr)")

        let liar = try ImageBuilder(layout: temp.child("layout"))
        liar.layers = b.layers
        let claimed = Digest.sha256(of: Array("the attacker's tar".utf8))
        liar.layers[1].diffID = claimed
        try liar.write(tag: "lie")
        let mentions = [layer.descriptor.digest.hex, claimed.description, layer.diffID.description]
        try expectDiffIDFailure(["mount", "--cache", cache, b.reference("lie"), try temp.makeDirectory("mnt")],
                                in: temp, mentions: mentions)
        try expectDiffIDFailure(["index", "--cache", cache, b.reference("lie")], in: temp, mentions: mentions)
        // The cached index is the honest one's, and stays.
        #expect(FileIO.exists("\(cache)/index/sha256/\(layer.descriptor.digest.hex)"))

        for tag in ["honest", "twin"] {
            let mnt = try temp.makeDirectory("mnt-\(tag)")
            let mount = try MountGuard(image: b.reference(tag), mountpoint: mnt, extraArgs: ["--cache", cache])
            defer { try? mount.unmount() }
            #expect(try FileIO.readAll(mnt + "/etc/who") == Array("base\n".utf8))
            try mount.unmount()
        }
    }

    /// A cache from before diff_ids were recorded (an index without its diff_id file) is not
    /// trusted: the layer is indexed again, so a lying image is still caught.
    @Test func indexWithoutARecordedDiffIDIsRebuilt() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        let layer = try b.addLayer(entries: Self.shared)
        try b.write(tag: "honest")
        let cache = temp.child("cache")
        #expect(try StrataBinary.run(["index", "--cache", cache, b.reference("honest")]).succeeded)
        let record = "\(cache)/diffid/sha256/\(layer.descriptor.digest.hex)"
        #expect(unlink(record) == 0)

        let liar = try ImageBuilder(layout: temp.child("layout"))
        liar.layers = b.layers
        liar.layers[0].diffID = Digest.sha256(of: Array("x".utf8))
        try liar.write(tag: "lie")
        try expectDiffIDFailure(["index", "--cache", cache, b.reference("lie")], in: temp,
                                mentions: [layer.descriptor.digest.hex])
        let out = try StrataBinary.run(["index", "--cache", cache, b.reference("honest")])
        #expect(out.succeeded && out.stdoutString.contains("indexed"), "\(out.stdoutString)\(out.stderr)")
        #expect(try FileIO.readAll(record) == Array("\(layer.diffID)\n".utf8))
    }
}
