#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSnapshot
import StrataSystem
import StrataTestSupport
import Testing

/// The state on disk: checked at start, inconsistencies named, leftovers of interrupted
/// operations harmless and collected; gc and the cache limit.
@Suite struct SnapshotStateTests {
    @Test func missingLayerBlobIsReportedAndBlocksChanges() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        let layer = try f.store.stat("base").layer!
        unlink(f.root + "/layout/blobs/sha256/\(layer.digest.hex)")
        let report = try f.store.check()
        #expect(report.problems.contains { $0.contains("snapshot \"base\"") && $0.contains(layer.digest.hex) })
        let refused = expectError(.inconsistent) { try f.store.prepare("x", parent: "base") }
        #expect(refused?.message.contains("\"base\"") == true)
        #expect(expectError(.inconsistent) { _ = try f.store.collectGarbage() } != nil)
        // Reads still work, with the problem as a warning.
        var warnings: [String] = []
        f.store.warn = { warnings.append($0) }
        #expect(try f.store.list().count == 2)
        #expect(warnings.contains { $0.contains("\"base\"") })
    }

    @Test func brokenParentsAndCyclesAreNamed() throws {
        let f = try StoreFixture()
        try f.store.prepare("a", parent: nil)
        try f.store.commit("c1", key: "a")
        try f.store.prepare("b", parent: "c1")
        try f.store.commit("c2", key: "b")
        var text = try f.metadata()
        // c1's parent becomes c2: a cycle; and a record whose parent is gone.
        var object = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
        var snapshots = try #require(object["snapshots"] as? [String: Any], "\(text)")
        var c1 = try #require(snapshots["c1"] as? [String: Any], "\(text)")
        c1["parent"] = "c2"
        snapshots["c1"] = c1
        var orphan = try #require(snapshots["c2"] as? [String: Any], "\(text)")
        orphan["parent"] = "ghost"
        orphan["id"] = 99
        snapshots["orphan"] = orphan
        object["snapshots"] = snapshots
        object["nextID"] = 100
        text = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        try FileIO.writeAtomically(f.root + "/metadata.json", Array(text.utf8))
        let problems = try f.store.check().problems
        #expect(problems.contains { $0.contains("\"orphan\"") && $0.contains("\"ghost\" does not exist") })
        #expect(problems.contains { $0.contains("cycle") })
    }

    @Test func damagedMetadataIsAnErrorNamingTheFile() throws {
        let f = try StoreFixture()
        try f.store.prepare("a", parent: nil)
        try FileIO.writeAtomically(f.root + "/metadata.json", Array("{not json".utf8))
        do {
            _ = try f.store.list()
            Issue.record("a damaged metadata.json was accepted")
        } catch let error as SnapshotError {
            #expect(error.kind == .inconsistent && error.message.contains("metadata.json"))
        }
    }

    @Test func leftoversAreReportedAndCollected() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        // What a crash leaves: a directory before its record, a tag before its record, a
        // temporary blob, and an image blob nothing refers to.
        try FileIO.makeDirectories(f.root + "/snapshots/77/upper")
        let writer = try ImageLayoutWriter(path: f.root + "/layout")
        let stray = try writer.writeBlob(Array("stray".utf8), mediaType: "application/octet-stream")
        try writer.tag(try f.store.stat("base").image!, as: "snap-555")
        let report = try f.store.check()
        #expect(report.isConsistent)
        #expect(report.leftovers.contains { $0.contains("snapshots/77") })
        #expect(report.leftovers.contains { $0.contains("snap-555") })
        let gc = try f.store.collectGarbage()
        #expect(gc.tagsRemoved == ["snap-555"])
        #expect(gc.directoriesRemoved.count == 1)
        #expect(gc.blobsRemoved >= 1)
        #expect(!FileIO.exists(f.root + "/layout/blobs/sha256/\(stray.digest.hex)"))
        #expect(try f.store.check().leftovers.isEmpty)
        // What snapshots use survives.
        let base = try f.store.stat("base")
        #expect(FileIO.exists(f.root + "/layout/blobs/sha256/\(base.layer!.digest.hex)"))
        _ = try ImageResolver.resolve(reference: "\(f.root)/layout:\(base.tag)")
    }

    @Test func gcRemovesLayersOfRemovedSnapshotsAndTheirIndexes() throws {
        let f = try StoreFixture()
        try f.store.prepare("a", parent: nil)
        try f.write("a", "f", "content")
        let c = try f.store.commit("c", key: "a")
        let hex = c.layer!.digest.hex
        #expect(FileIO.exists(f.root + "/cache/index/sha256/\(hex)"))
        try f.store.remove("c")
        #expect(FileIO.exists(f.root + "/layout/blobs/sha256/\(hex)"))   // until gc
        let gc = try f.store.collectGarbage()
        #expect(gc.blobsRemoved == 3)   // layer, config, manifest of the chain image
        #expect(gc.cacheFilesRemoved == 1)
        #expect(!FileIO.exists(f.root + "/layout/blobs/sha256/\(hex)"))
        #expect(!FileIO.exists(f.root + "/cache/index/sha256/\(hex)"))
        // The empty image stays: the next parentless snapshot mounts on it.
        _ = try ImageResolver.resolve(reference: "\(f.root)/layout:strata-empty")
    }

    @Test func cacheLimitEvictsLeastRecentlyUsedFirst() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        let layers = try f.store.list().compactMap { $0.record.layer?.digest.hex }
        #expect(layers.count == 2)
        let cache = f.root + "/cache/index/sha256/"
        // The first layer used long ago, the second just now.
        var old = [timespec(tv_sec: 1_000_000, tv_nsec: 0), timespec(tv_sec: 1_000_000, tv_nsec: 0)]
        #expect(utimensat(AT_FDCWD, cache + layers[0], &old, 0) == 0)
        let sizes = layers.map { hex -> Int64 in
            var st = stat()
            _ = lstat(cache + hex, &st)
            return Int64(st.st_blocks) * 512
        }
        let gc = try f.store.collectGarbage(cacheMax: sizes[1])
        #expect(gc.evicted == 1)
        #expect(!FileIO.exists(cache + layers[0]))
        #expect(FileIO.exists(cache + layers[1]))
        #expect(gc.cacheSize <= sizes[1])
        // An evicted index is rebuilt when needed.
        #expect(try f.store.usage(try f.store.list().first { $0.record.layer?.digest.hex == layers[0] }!.key).inodes > 0)
    }

    @Test func mountedSnapshotsKeepTheirCacheFiles() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        try f.store.prepare("a", parent: "base")
        _ = try f.store.mounts("a")
        let gc = try f.store.collectGarbage(cacheMax: 0)
        #expect(gc.evicted == 0)
        try f.store.unmount("a")
        #expect(try f.store.collectGarbage(cacheMax: 0).evicted == 2)
    }

    @Test func chainIDsFollowTheImageSpec() throws {
        let f = try StoreFixture()
        let keys = try f.store.importImage(f.image, as: "img")
        let image = try ImageResolver.resolve(reference: f.image)
        #expect(keys[0] == image.layers[0].diffID.description)
        // The top is named, but its parent chain is keyed as containerd keys it.
        #expect(try f.store.stat("img").parent == keys[0])
    }
}
