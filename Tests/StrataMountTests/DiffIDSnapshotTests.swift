#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataOCI
import StrataSystem
import StrataTar
import StrataTestSupport

/// Issue 10, point 4: the snapshot store keys lower snapshots by chain IDs, which come from
/// diff_ids; an image lying about one must not poison the snapshots of honest images, and
/// `snapshot check` must catch a committed layer blob changed on disk.
@Suite(.mountTimeLimit, .serialized, .enabled(if: SnapshotStoreFixture.available, "needs root, /dev/fuse and a built strata"))
struct DiffIDSnapshotTests {
    /// An honest two-layer image, and a lying one whose base layer has other content but
    /// claims the honest base's diff_id (and shares the honest top layer): without the check
    /// both would key their base snapshot by the same chain ID.
    static func images(_ s: SnapshotStoreFixture) throws -> (honest: String, lying: String) {
        let honest = try ImageBuilder(layout: s.temp.child("honest"))
        let base = try honest.addLayer(entries: [Items.dir("etc"), Items.file("etc/who", "honest\n")])
        let top = try honest.addLayer(entries: [Items.file("etc/top", "top\n")])
        try honest.write(tag: "v1")
        let lying = try ImageBuilder(layout: s.temp.child("lying"))
        try lying.addLayer(entries: [Items.dir("etc"), Items.file("etc/who", "attacker\n")])
        lying.layers[0].diffID = base.diffID
        try lying.addLayer(entries: [Items.file("etc/top", "top\n")])
        #expect(lying.layers[1].diffID == top.diffID)
        try lying.write(tag: "v1")
        return (honest.reference("v1"), lying.reference("v1"))
    }

    @Test func lyingImageIsRefusedAndDoesNotPoisonTheHonestOne() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        let (honest, lying) = try Self.images(s)
        let refused = try s.run(["import", lying, "evil"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("diff_id mismatch") && refused.stderr.contains("layer 0 "), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1, "\(refused.stderr)")
        #expect(try s.check(["list"]) == "KEY\tKIND\tPARENT\n")   // no snapshots

        let keys = try s.check(["import", honest, "good"]).split(separator: "\n").map(String.init)
        #expect(keys.count == 2 && keys.last == "good")
        try s.check(["view", "v", "good"])
        let root = try s.mount("v")
        #expect(String(decoding: try FileIO.readAll(root + "/etc/who"), as: UTF8.self) == "honest\n")
        // The lying image is still refused once its claimed chain exists.
        #expect(try s.run(["import", lying, "evil"]).status != 0)
        #expect(try s.check(["check"]) == "ok\n")
        try s.close()
    }

    @Test func checkCatchesATamperedCommittedLayer() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        let (honest, _) = try Self.images(s)
        try s.check(["import", honest, "good"])
        #expect(try s.check(["check"]) == "ok\n")
        let layer = try #require((try s.statJSON("good")["layer"] as? [String: Any])?["digest"] as? String)
        let hex = String(layer.dropFirst("sha256:".count))
        // One byte changed (in a copy: the store's blob is a hard link to the image's).
        let blob = s.root + "/layout/blobs/sha256/" + hex
        var bytes = try FileIO.readAll(blob)
        bytes[bytes.count / 2] ^= 0x10
        #expect(unlink(blob) == 0)
        try FileIO.writeAtomically(blob, bytes)
        let r = try s.run(["check"])
        #expect(r.status == 1)
        let report = r.stdoutString
        #expect(report.contains("inconsistent: snapshot \"good\": layer blob") && report.contains(hex), "\(report)")
        #expect(report.split(separator: "\n").count == 1, "\(report)")
        try s.close()
    }
}
