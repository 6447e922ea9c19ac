#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSnapshot
import StrataSystem
import StrataTestSupport
import Testing

/// The snapshotter contract (containerd's testsuite, as rules): kinds, parents, names shared
/// by keys, commit and remove preconditions, walk and stat.
@Suite struct SnapshotRulesTests {
    @Test func importMakesAChainKeyedByChainIDs() throws {
        let f = try StoreFixture()
        let keys = try f.store.importImage(f.image, as: "img")
        #expect(keys.count == 2)
        #expect(keys[0].hasPrefix("sha256:") && keys[1] == "img")
        let bottom = try f.store.stat(keys[0])
        let top = try f.store.stat("img")
        #expect(bottom.kind == .committed && bottom.parent == nil)
        #expect(top.kind == .committed && top.parent == keys[0])
        // The bottom's chain ID is its diff ID (image spec).
        #expect(bottom.diffID?.description == keys[0])
        // Blobs are in the store; a second image on the same base reuses the bottom snapshot.
        #expect(FileIO.exists(f.root + "/layout/blobs/sha256/\(top.layer!.digest.hex)"))
        let again = try f.store.importImage(f.image, as: "img2")
        #expect(again[0] == keys[0])
        #expect(try f.store.list().count == 3)
        // Each committed snapshot's chain image resolves to its layers.
        let chain = try ImageResolver.resolve(reference: "\(f.root)/layout:\(top.tag)")
        #expect(chain.layers.map(\.descriptor.digest) == [bottom.layer!.digest, top.layer!.digest])
        let lower = try ImageResolver.resolve(reference: "\(f.root)/layout:\(bottom.tag)")
        #expect(lower.layers.count == 1 && lower.config.rootfs.diffIDs.count == 1)
        // Indexed on import, as a pulled layer is on first mount.
        #expect(FileIO.exists(f.root + "/cache/index/sha256/\(top.layer!.digest.hex)"))
    }

    @Test func prepareCommitChainsSeveralDeep() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        var parent = "base"
        for level in 1...4 {
            try f.store.prepare("active-\(level)", parent: parent)
            #expect(try f.store.stat("active-\(level)").kind == .active)
            try f.write("active-\(level)", "level\(level)/file", "\(level)\n")
            let committed = try f.store.commit("layer-\(level)", key: "active-\(level)")
            #expect(committed.kind == .committed && committed.parent == parent)
            // The active key is gone once committed.
            #expect(expectError(.notFound) { _ = try f.store.stat("active-\(level)") } != nil)
            parent = "layer-\(level)"
        }
        let top = try f.store.stat("layer-4")
        let chain = try ImageResolver.resolve(reference: "\(f.root)/layout:\(top.tag)")
        #expect(chain.layers.count == 6)   // 2 image layers + 4 commits
        #expect(chain.config.rootfs.diffIDs.last == top.diffID)
        // No snapshot directories remain for committed snapshots.
        // prepare made the directory; an error listing it is a failure, not an empty list.
        let dirs = try FileManager.default.contentsOfDirectory(atPath: f.root + "/snapshots")
        #expect(dirs.isEmpty)
    }

    @Test func parentlessPrepareAndCommit() throws {
        let f = try StoreFixture()
        try f.store.prepare("scratch", parent: nil)
        try f.write("scratch", "only", "x")
        let committed = try f.store.commit("first", key: "scratch")
        #expect(committed.parent == nil)
        let chain = try ImageResolver.resolve(reference: "\(f.root)/layout:\(committed.tag)")
        #expect(chain.layers.count == 1)
        // Mounted on the empty image.
        try f.store.prepare("again", parent: nil)
        _ = try f.store.mounts("again")
        #expect(f.mounter.calls.last?.contains(":strata-empty ") == true)
    }

    @Test func keysAndNamesShareOneNamespace() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        try f.store.prepare("a", parent: "base")
        #expect(expectError(.alreadyExists) { try f.store.prepare("a", parent: "base") } != nil)
        #expect(expectError(.alreadyExists) { try f.store.prepare("base", parent: nil) } != nil)
        #expect(expectError(.alreadyExists) { try f.store.commit("base", key: "a") } != nil)
        #expect(expectError(.alreadyExists) { try f.store.importImage(f.image, as: "a") } != nil)
    }

    @Test func parentsMustBeCommitted() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        try f.store.prepare("active", parent: "base")
        try f.store.view("view", parent: "base")
        #expect(expectError(.failedPrecondition) { try f.store.prepare("x", parent: "active") } != nil)
        #expect(expectError(.failedPrecondition) { try f.store.view("y", parent: "view") } != nil)
        #expect(expectError(.notFound) { try f.store.prepare("z", parent: "nothing") } != nil)
        // A failed prepare leaves nothing behind.
        #expect(Set(try f.store.list().map(\.key)) == ["active", "base", "view", try f.store.stat("base").parent!])
    }

    @Test func onlyActiveSnapshotsCommit() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        try f.store.view("view", parent: "base")
        #expect(expectError(.failedPrecondition) { try f.store.commit("n1", key: "view") } != nil)
        #expect(expectError(.failedPrecondition) { try f.store.commit("n2", key: "base") } != nil)
        #expect(expectError(.notFound) { try f.store.commit("n3", key: "missing") } != nil)
        #expect(expectError(.failedPrecondition) { _ = try f.store.mounts("base") } != nil)
    }

    @Test func removeRules() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        try f.store.prepare("a", parent: "base")
        try f.write("a", "f", "1")
        try f.store.commit("c", key: "a")
        try f.store.prepare("b", parent: "c")
        try f.store.view("v", parent: "c")
        _ = try f.store.mounts("b")
        let refused = expectError(.failedPrecondition) { try f.store.remove("c") }
        #expect(refused?.message.contains("\"b\"") == true && refused?.message.contains("\"v\"") == true)
        let id = try f.store.stat("b").id
        try f.store.remove("b")
        #expect(!f.mounter.isMounted(f.root + "/snapshots/\(id)/rootfs"))   // unmounted first
        #expect(!FileIO.exists(f.root + "/snapshots/\(id)"))
        try f.store.remove("v")
        let tag = try f.store.stat("c").tag
        try f.store.remove("c")
        #expect(expectError(.notFound) { _ = try f.store.stat("c") } != nil)
        #expect(try !ImageLayout(path: f.root + "/layout").tags().contains(tag))
        #expect(expectError(.notFound) { try f.store.remove("c") } != nil)
        #expect(try f.store.check().isConsistent)
    }

    @Test func usageCountsOwnDataOnly() throws {
        let f = try StoreFixture()
        try f.store.importImage(f.image, as: "base")
        try f.store.prepare("a", parent: "base")
        let empty = try f.store.usage("a")
        #expect(empty.inodes == 1)   // the upper directory itself
        try f.write("a", "dir/big", String(repeating: "x", count: 64 * 1024))
        try f.write("a", "small", "s")
        let used = try f.store.usage("a")
        #expect(used.inodes == 4)   // upper, dir, big, small
        #expect(used.size >= empty.size + 64 * 1024)
        let committed = try f.store.commit("c", key: "a")
        let usage = try f.store.usage("c")
        #expect(usage.size == committed.layer!.size)
        #expect(usage.inodes == 3)   // dir/, dir/big, small: the layer's entries
        try f.store.view("v", parent: "c")
        #expect(try f.store.usage("v") == SnapshotUsage(size: 0, inodes: 0))
    }

    @Test func labelsAndTimesAreRecorded() throws {
        let f = try StoreFixture()
        try f.store.prepare("a", parent: nil, labels: ["k": "v"])
        let record = try f.store.stat("a")
        #expect(record.labels == ["k": "v"])
        #expect(record.created.hasSuffix("Z"))
        var options = SnapshotStore.CommitOptions()
        options.labels = ["x": "y"]
        options.compression = .zstd
        let c = try f.store.commit("c", key: "a", options: options)
        #expect(c.labels == ["x": "y"])
        #expect(c.layer?.mediaType == MediaType.ociLayerZstd)
    }
}
