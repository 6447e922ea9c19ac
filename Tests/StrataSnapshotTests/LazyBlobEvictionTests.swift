#if canImport(Glibc)
import Glibc
#endif
import StrataSnapshot
import StrataSystem
import StrataTestSupport
import Testing

/// Issue 11: a lazily fetched blob (CACHE/blobs/sha256/<hex>, with its record <hex>.ranges) is a
/// cache file like an index: counted in the cache size and evicted under `--cache-max`, its
/// record removed with it.
@Suite struct LazyBlobEvictionTests {
    @Test func lazyBlobIsCountedAndEvictedWithItsRecord() throws {
        let temp = try TempDirectory(prefix: "strata-snapshot-unit-")
        let store = SnapshotStore(root: temp.child("root"), mounter: FakeMounter())
        let cache = temp.child("cache")
        let dir = cache + "/blobs/sha256"
        try FileIO.makeDirectories(dir)
        let hex = String(repeating: "ab", count: 32)
        try FileIO.writeAtomically(dir + "/" + hex, Array(repeating: 7, count: 256 << 10))
        try FileIO.writeAtomically(dir + "/" + hex + ".ranges", Array(repeating: 1, count: 32))
        let before = try store.collectGarbage(cacheDirectory: cache)
        #expect(before.cacheSize >= 256 << 10)
        let gc = try store.collectGarbage(cacheMax: 0, cacheDirectory: cache)
        #expect(gc.evictedBytes == before.cacheSize)
        #expect(!FileIO.exists(dir + "/" + hex) && !FileIO.exists(dir + "/" + hex + ".ranges"))
    }
}
