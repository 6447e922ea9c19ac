#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataOCI
import StrataTestSupport

/// The config ImageBuilder writes, as `strata inspect` reads it; and a second mount that
/// runs from the cached index only.
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"))
struct InspectAndCacheMountTests {
    @Test func inspectShowsTheConfig() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.file("bin/app", "#!/bin/sh\n", mode: 0o755)])
        try builder.addLayer(entries: [Items.file("etc/app.conf", "x=1\n")], compression: .zstd)
        try builder.write(tag: "v1", config: .init(entrypoint: ["/bin/app"], cmd: ["--serve"], env: ["A=1", "PATH=/bin"],
                                                   user: "1000:1000", workingDir: "/srv", labels: ["org.example": "yes"]))
        let result = try StrataBinary.run(["inspect", "--json", "--cache", temp.child("cache"), builder.reference("v1")])
        #expect(result.succeeded, "\(result.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout)) as? [String: Any])
        #expect(json["entrypoint"] as? [String] == ["/bin/app"])
        #expect(json["cmd"] as? [String] == ["--serve"])
        #expect(json["env"] as? [String] == ["A=1", "PATH=/bin"])
        #expect(json["user"] as? String == "1000:1000")
        #expect(json["workingDir"] as? String == "/srv")
        #expect(json["labels"] as? [String: String] == ["org.example": "yes"])
        let layers = try #require(json["layers"] as? [[String: Any]])
        #expect(layers.map { $0["mediaType"] as? String } == [MediaType.ociLayerGzip, MediaType.ociLayerZstd])
        #expect(layers.map { $0["digest"] as? String } == builder.layers.map { $0.descriptor.digest.description })
    }

    /// The second mount reads the cached index; it must show the same tree, and so must a
    /// mount after the cache was indexed by `strata index`.
    @Test func remountFromCachedIndex() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [
            [Items.dir("d"), Items.file(bytes("d/big"), Items.pseudoRandom(count: 3 << 20, seed: 5)), Items.file("d/f", "f")],
            [Items.whiteout("d/f"), Items.file("g", "g")],
        ], compression: .gzipMultiMember(chunk: 500_000))
        let first = try MountComparison.captureMount(layout: builder.layout, tag: "test", work: temp)
        let second = try MountComparison.captureMount(layout: builder.layout, tag: "test", work: temp)
        #expect(first.differences(from: second).isEmpty)
        #expect(second.paths == ["d", "d/big", "g"].sortedWithRoot)

        let indexed = try StrataBinary.run(["index", "--cache", temp.child("cache2"), builder.reference("test")])
        #expect(indexed.succeeded, "\(indexed.stderr)")
        #expect(indexed.stdoutString.split(separator: "\n").count == 2)
        try expectSameAsUmoci(builder)
    }
}
