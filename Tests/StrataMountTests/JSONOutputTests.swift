import Foundation
import Glibc
import StrataSystem
import StrataTestSupport
import Testing

/// `--json` on index, commit, gc and bundle: one object, the documented field names.
@Suite("--json output of index, commit, gc and bundle", .mountTimeLimit)
struct JSONOutputTests {
    @Test func indexJSON() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "one")], [Items.file("b", "two")]])
        let r = try StrataBinary.run(["index", "--json", "--cache", temp.child("cache"), builder.reference("test")])
        #expect(r.succeeded, "\(r.stderr)")
        let json = try jsonObject(r.stdout)
        #expect(try field(json, "reference", as: String.self) == builder.reference("test"))
        #expect(try field(json, "manifestDigest", as: String.self).hasPrefix("sha256:"))
        let layers = try field(json, "layers", as: [[String: Any]].self)
        #expect(layers.count == 2)
        for layer in layers {
            #expect(try field(layer, "digest", as: String.self).hasPrefix("sha256:"))
            #expect(try field(layer, "compression", as: String.self) == "gzip")
            #expect(try field(layer, "entries", as: Int.self) == 1)
            #expect(try field(layer, "built", as: Bool.self))
            _ = try field(layer, "checkpoints", as: Int.self)
            _ = try field(layer, "uncompressedSize", as: Int.self)
            _ = try field(layer, "indexSize", as: Int.self)
        }
        let tree = try field(json, "mergedTree", as: [String: Any].self)
        #expect(try field(tree, "inodes", as: Int.self) == 3)
        #expect(try field(tree, "built", as: Bool.self))
        // The second run finds everything cached.
        let again = try jsonObject(try StrataBinary.run(["index", "--json", "--cache", temp.child("cache"), builder.reference("test")]).stdout)
        #expect(try field(field(again, "mergedTree", as: [String: Any].self), "built", as: Bool.self) == false)
    }

    @Test func commitJSON() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.file("a", "one")]])
        let upper = try temp.makeDirectory("upper")
        try FileIO.writeAtomically(upper + "/new", Array("hello".utf8))
        let r = try StrataBinary.run(["commit", "--json", upper, builder.reference("test"), "next"])
        #expect(r.succeeded, "\(r.stderr)")
        let json = try jsonObject(r.stdout)
        #expect(try field(json, "tag", as: String.self) == "next")
        for key in ["manifestDigest", "configDigest", "layerDigest", "diffID"] {
            #expect(try field(json, key, as: String.self).hasPrefix("sha256:"), "\(key)")
        }
        #expect(try field(json, "layerSize", as: Int.self) > 0)
        #expect(try field(json, "warnings", as: [String].self).isEmpty)
        // The digest printed is the tag's manifest.
        let inspect = try jsonObject(try StrataBinary.run(["inspect", "--json", "--cache", temp.child("cache"), builder.reference("next")]).stdout)
        #expect(try field(inspect, "manifestDigest", as: String.self) == field(json, "manifestDigest", as: String.self))
    }

    @Test func gcJSON() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let root = temp.child("store")
        let r = try StrataBinary.run(["gc", "--json", "--root", root])
        #expect(r.succeeded, "\(r.stderr)")
        let json = try jsonObject(r.stdout)
        for key in ["blobsRemoved", "blobBytes", "cacheFilesRemoved", "cacheBytes", "evicted", "evictedBytes", "cacheSize"] {
            #expect(try field(json, key, as: Int.self) >= 0, "\(key)")
        }
        #expect(try field(json, "tagsRemoved", as: [String].self).isEmpty)
        #expect(try field(json, "directoriesRemoved", as: [String].self).isEmpty)
    }

    @Test(.enabled(if: Requirement.isRoot, "needs root (bundle mounts with --allow-other)"))
    func bundleJSON() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.file("bin/app", "x", mode: 0o755)])
        try builder.write(tag: "v1", config: .init(cmd: ["/bin/app"]))
        let bundle = temp.child("bundle")
        let r = try StrataBinary.run(["bundle", "--json", "--read-only", "--cache", temp.child("cache"), builder.reference("v1"), bundle])
        defer { _ = try? StrataBinary.run(["bundle", "--remove", bundle]) }
        #expect(r.succeeded, "\(r.stderr)")
        let json = try jsonObject(r.stdout)
        #expect(try field(json, "bundle", as: String.self) == bundle)
        #expect(try field(json, "rootfs", as: String.self) == bundle + "/rootfs")
        #expect(try field(json, "manifestDigest", as: String.self).hasPrefix("sha256:"))
        #expect(json["upper"] is NSNull, "upper: \(String(describing: json["upper"]))")
        #expect(try field(json, "removed", as: Bool.self) == false)
        let removed = try StrataBinary.run(["bundle", "--remove", "--json", bundle])
        #expect(removed.succeeded, "\(removed.stderr)")
        let gone = try jsonObject(removed.stdout)
        #expect(try field(gone, "removed", as: Bool.self))
        #expect(gone["rootfs"] is NSNull)
    }
}
