#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataOCI
import StrataSystem
import StrataTestSupport

/// The config ImageBuilder writes, as `strata inspect` reads it; and a second mount that
/// runs from the cached index only.
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
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

    /// The second mount reads the cached indexes and merged tree; it must show the same tree,
    /// and so must a mount whose cached merged tree was damaged (it is rebuilt), and a mount
    /// after the cache was filled by `strata index`.
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

        let trees = temp.child("cache") + "/tree/sha256"
        let names = try #require(try? Command.run("/bin/ls", [trees]).stdoutString.split(separator: "\n").map(String.init))
        #expect(names.count == 1)
        var original: [String: [UInt8]] = [:]
        for name in names {
            // Damage the middle of the cached tree: the next mount must notice and rebuild it.
            let path = trees + "/" + name
            var bytes = try FileIO.readAll(path)
            original[name] = bytes
            bytes[bytes.count / 2] ^= 0x5A
            try FileIO.writeAtomically(path, bytes)
        }
        let third = try MountComparison.captureMount(layout: builder.layout, tag: "test", work: temp)
        #expect(first.differences(from: third).isEmpty)
        for name in names { #expect(try FileIO.readAll(trees + "/" + name) == original[name]) }

        let indexed = try StrataBinary.run(["index", "--cache", temp.child("cache2"), builder.reference("test")])
        #expect(indexed.succeeded, "\(indexed.stderr)")
        let lines = indexed.stdoutString.split(separator: "\n")
        #expect(lines.count == 3 && lines.last?.hasPrefix("merged tree") == true && lines.last?.hasSuffix("built") == true)
        let again = try StrataBinary.run(["index", "--cache", temp.child("cache2"), builder.reference("test")])
        #expect(again.stdoutString.split(separator: "\n").last?.hasSuffix("cached") == true, "\(again.stdoutString)")
        try expectSameAsUmoci(builder)
    }
}
