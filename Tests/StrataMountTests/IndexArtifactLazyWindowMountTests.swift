#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataIndex
import StrataOCI
import StrataSystem
import StrataTestSupport
import Testing

/// A published index whose windows section is large: a fresh cache's mount installs it without
/// the windows and fetches each when a read decodes from its checkpoint; a later mount of the
/// same cache (another daemon) fetches the windows still missing. Counted at the registry.
@Suite(.mountTimeLimit, .serialized,
       .enabled(if: getuid() == 0 && StrataBinary.isBuilt && TestRegistry.isAvailable && Umoci.isAvailable,
                "needs root, a built strata, docker-registry, skopeo, python3 and umoci"))
struct IndexArtifactLazyWindowMountTests {
    @Test("a fresh mount fetches no index windows until reads need them; a later mount of the cache fetches the missing ones; the tree is umoci's")
    func windowsFetchedByReads() throws {
        let s = try IndexArtifactMountTests.Setup(spread: true)
        let big = s.bigLayer.descriptor.digest
        try s.index(cache: "publisher", push: true)
        let published = try FileIO.readAll(s.temp.child("publisher/index/sha256/\(big.hex)"))
        let windows = try #require(IndexWindows.section(header: published))
        #expect(windows.count >= 256 << 10, "windows section of \(windows.count) bytes")

        let before = try s.proxy.statistics()
        let first = try s.mount(cache: "fresh", at: "mnt", background: false)
        let mounted = try s.proxy.statistics()
        // The mount read the indexes but not the big layer's windows (nor any layer bytes).
        let fetched = mounted.blobBytes - before.blobBytes
        #expect(fetched < published.count - windows.count / 2, "the mount fetched \(fetched) bytes; index \(published.count), windows \(windows.count)")
        var status = try StatusReport.read(s.temp.child("mnt"))
        #expect(status.text(big, "index") == "artifact", "\(status.json)")
        #expect(status.number(big, "indexWindowRequests") == 0, "\(status.json)")
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        status = try StatusReport.read(s.temp.child("mnt"))
        #expect(status.number(big, "indexWindowRequests") >= 1, "\(status.json)")
        #expect(status.number(big, "indexWindowBytes") < UInt64(windows.count) / 2, "\(status.json)")
        try first.unmount()

        // Another daemon on the same cache: the index is cached, untrusted, windows partly here.
        let second = try s.mount(cache: "fresh", at: "mnt2", background: false)
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/small")) == Array("small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/b7")) == Items.pseudoRandom(count: 4 << 20, seed: 207))
        status = try StatusReport.read(s.temp.child("mnt2"))
        #expect(status.text(big, "index") == "cache", "\(status.json)")
        #expect(status.number(big, "indexWindowRequests") >= 1, "\(status.json)")

        let rootfs = try Umoci.unpack(layout: s.temp.child("layout"), tag: "v1", into: s.temp.child("umoci"))
        let reference = try TreeSnapshot.capture(root: rootfs)
        var ignores = MountComparison.rootIgnores
        for entry in reference.entries.values where entry.type == .directory && entry.mtimeSeconds >= Int64(time(nil)) - 600 {
            ignores[entry.pathString, default: []].insert(.mtime)
        }
        let tree = try TreeSnapshot.capture(root: s.temp.child("mnt2"))
        try second.unmount()
        let diffs = reference.differences(from: tree, ignoring: [], ignoringAt: ignores)
        #expect(diffs.isEmpty, "mount from an index fetched without its windows: \(diffs)")
        #expect(!s.log("mnt2").contains("rebuilding"), "\(s.log("mnt2"))")
    }

    @Test("the prefetch list's windows are fetched before its ranges: the reads it lists fetch no window")
    func prefetchListFetchesWindows() throws {
        let s = try IndexArtifactMountTests.Setup(spread: true)
        let big = s.bigLayer.descriptor.digest
        try s.index(cache: "publisher", push: true)
        // A first mount records its reads; its cache publishes the index with the list.
        let first = try s.mount(cache: "first", at: "mnt", background: false)
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt/data/b5")) == Items.pseudoRandom(count: 4 << 20, seed: 205))
        try first.unmount()
        #expect(Mounts.waitUntil(seconds: 20) { FileIO.directoryEntries(s.temp.child("first/prefetch/sha256")).contains { $0.hasSuffix(".json") } })
        try s.index(cache: "first", push: true)

        let second = try s.mount(cache: "second", at: "mnt2", background: false)
        // What the list holds of the big layer (the pulled list is kept in the cache).
        let listDirectory = s.temp.child("second/prefetch/sha256")
        let listFile = try #require(FileIO.directoryEntries(listDirectory).first { $0.hasSuffix(".json") })
        let list = try #require(try JSONSerialization.jsonObject(with: Data(FileIO.readAll(listDirectory + "/" + listFile))) as? [String: Any])
        let ranges = (list["ranges"] as? [[String: Any]] ?? []).filter { $0["layer"] as? String == big.description }
        let listed = ranges.reduce(UInt64(0)) { $0 + ((($1["length"] as? NSNumber)?.uint64Value) ?? 0) }
        #expect(listed >= 2 << 20, "\(list)")   // b5's 4 MiB compress to about 2.7 MB
        let replayed = Mounts.waitUntil(seconds: 60) {
            // Consecutive spans may share a byte (listed twice, fetched once).
            ((try? StatusReport.read(s.temp.child("mnt2")).number(big, "prefetchBytes")) ?? 0) + UInt64(ranges.count) >= listed
        }
        let before = try StatusReport.read(s.temp.child("mnt2"))
        #expect(replayed, "\(before.json)")
        #expect(before.number(big, "indexWindowRequests") >= 1, "\(before.json)")
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/small")) == Array("small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/b5")) == Items.pseudoRandom(count: 4 << 20, seed: 205))
        let after = try StatusReport.read(s.temp.child("mnt2"))
        #expect(after.number(big, "indexWindowRequests") == before.number(big, "indexWindowRequests"), "\(after.json)")
        #expect(after.number(big, "onDemandBytes") == 0, "\(after.json)")
        try second.unmount()
    }
}
