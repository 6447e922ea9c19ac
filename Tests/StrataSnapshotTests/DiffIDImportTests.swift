#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataOCI
import StrataSnapshot
import StrataSystem
import StrataTestSupport

/// Issue 10, point 4, on the store itself (no FUSE): chain IDs come only from verified
/// diff_ids, and `check` reads every committed layer blob.
struct DiffIDImportTests {
    /// An image in `f`'s temp directory whose base layer claims `claimedBase` as its diff_id.
    static func image(_ f: StoreFixture, _ name: String, who: String, claimedBase: Digest? = nil) throws -> (String, ImageBuilder) {
        let b = try ImageBuilder(layout: f.temp.child(name))
        try b.addLayer(entries: [Items.dir("etc"), Items.file("etc/who", who)])
        if let claimedBase { b.layers[0].diffID = claimedBase }
        try b.addLayer(entries: [Items.file("etc/top", "top\n")])
        try b.write(tag: "v1")
        return (b.reference("v1"), b)
    }

    @Test func aLyingImageCreatesNoSnapshotsAndTheHonestOneImports() throws {
        let f = try StoreFixture()
        let (honest, h) = try Self.image(f, "honest", who: "honest\n")
        let (lying, l) = try Self.image(f, "lying", who: "attacker\n", claimedBase: h.layers[0].diffID)
        let error = try #require(expectError(.other) { try f.store.importImage(lying, as: "evil") })
        #expect(error.description.contains("diff_id mismatch"), "\(error)")
        #expect(error.description.contains("layer 0 sha256:\(l.layers[0].descriptor.digest.hex)"), "\(error)")
        #expect(try f.store.list().isEmpty)
        // Nothing of the lying image entered the store's layout.
        #expect(!FileIO.exists(f.root + "/layout/blobs/sha256/\(l.layers[0].descriptor.digest.hex)"))

        let keys = try f.store.importImage(honest, as: "good")
        #expect(keys.count == 2)
        let base = try f.store.stat(keys[0])
        #expect(base.layer?.digest == h.layers[0].descriptor.digest)
        #expect(base.diffID == h.layers[0].diffID)
        // Once the honest chain exists, the lying image still cannot claim it.
        #expect(expectError(.other) { try f.store.importImage(lying, as: "evil") } != nil)
        #expect(try f.store.check().problems.isEmpty)
    }

    @Test func checkReportsATamperedLayerBlobByNameAndDigest() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        #expect(try f.store.check().problems.isEmpty)
        let top = try f.store.stat("base")
        let layer = try #require(top.layer)
        let path = f.root + "/layout/blobs/sha256/\(layer.digest.hex)"
        var bytes = try FileIO.readAll(path)
        bytes[bytes.count - 8] ^= 0x01    // the gzip trailer's CRC: the tar still parses
        #expect(unlink(path) == 0)         // a hard link to the fixture's blob: replace, not edit
        try FileIO.writeAtomically(path, bytes)
        let problems = try f.store.check().problems
        #expect(problems.count == 1, "\(problems)")
        #expect(problems.first?.contains("snapshot \"base\"") == true && problems.first?.contains(layer.digest.hex) == true,
                "\(problems)")
    }

    @Test func checkReportsARecordedDiffIDTheBlobDoesNotHave() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        let metadataPath = f.root + "/metadata.json"
        let top = try f.store.stat("base")
        let recorded = try #require(top.diffID).description
        let forged = Digest.sha256(of: [1, 2, 3]).description
        let text = String(decoding: try FileIO.readAll(metadataPath), as: UTF8.self)
        #expect(text.contains(recorded))
        try FileIO.writeAtomically(metadataPath, Array(text.replacing(recorded, with: forged).utf8))
        let problems = try f.store.check().problems
        #expect(problems.contains { $0.contains("snapshot \"base\"") && $0.contains("diff_id mismatch") && $0.contains(forged) },
                "\(problems)")
    }
}
