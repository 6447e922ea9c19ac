#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSystem
import StrataTestSupport
import Testing

/// Issue 11, index sharing: an index one machine publishes (`strata index --push`) lets
/// another, with an empty cache, mount the image lazily; a forged one is caught once the blob
/// is complete. Counted at the registry by the counting proxy.
@Suite(.mountTimeLimit, .serialized,
       .enabled(if: getuid() == 0 && StrataBinary.isBuilt && TestRegistry.isAvailable && Umoci.isAvailable,
                "needs root, a built strata, docker-registry, skopeo, python3 and umoci"))
struct IndexArtifactMountTests {
    struct Setup {
        let temp: TempDirectory
        let registry: TestRegistry
        let proxy: RegistryProxy
        let image: ImageBuilder
        /// The registry itself, and through the counting proxy.
        var direct: String { registry.reference("app:v1") }
        var counted: String { proxy.reference("app:v1") }
        var bigLayer: ImageBuilder.Layer { image.layers[1] }
        var blobBytes: Int { image.layers.reduce(0) { $0 + Int($1.descriptor.size) } }

        /// `spread`: the image for counting, many spans with the small files in one place
        /// (RegistryImage's big layer is three spans: any read fetches a third of it).
        init(spread: Bool = false) throws {
            temp = try TempDirectory()
            registry = try TestRegistry()
            image = spread ? try Self.spreadImage(layout: temp.child("layout")) : try RegistryImage.make(layout: temp.child("layout"))
            try registry.push(layout: image.reference("v1"), reference: "app:v1")
            proxy = try RegistryProxy(registry)
        }

        /// A base layer, and a 64 MiB layer of 4 MiB incompressible files (16 checkpoint spans)
        /// with two small files in the middle: reading them needs one or two spans.
        static func spreadImage(layout: String) throws -> ImageBuilder {
            let b = try ImageBuilder(layout: layout)
            try b.addLayer(entries: [
                Items.dir("etc"), Items.file("etc/os-release", "ID=strata-test\n"), Items.dir("usr"), Items.dir("usr/bin"),
                Items.file("usr/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755),
            ])
            var entries = [Items.dir("data")]
            for i in 0..<8 { entries.append(Items.file(Array("data/a\(i)".utf8), Items.pseudoRandom(count: 4 << 20, seed: UInt64(100 + i)))) }
            entries += [Items.file("data/small", "small file\n"), Items.file("data/small2", "second small file\n")]
            for i in 0..<8 { entries.append(Items.file(Array("data/b\(i)".utf8), Items.pseudoRandom(count: 4 << 20, seed: UInt64(200 + i)))) }
            try b.addLayer(entries: entries)
            try b.write(tag: "v1")
            return b
        }

        /// `strata index [--push]` of the image with cache `cache`; the artifact digest it printed.
        @discardableResult
        func index(cache: String, push: Bool) throws -> String {
            let r = try StrataBinary.run(["index"] + (push ? ["--push"] : []) + ["--tls-verify=false", "--cache", temp.child(cache), direct])
            guard r.succeeded else { throw HarnessError("strata index failed (\(r.status)): \(r.stderr)") }
            return r.stdoutString.split(separator: "\n").last.map(String.init) ?? ""
        }

        func mount(cache: String, at name: String, background: Bool) throws -> MountGuard {
            try MountGuard(image: counted, mountpoint: temp.child(name),
                           extraArgs: ["--tls-verify=false", "--cache", temp.child(cache), "--log", temp.child("\(name).log"),
                                       "--background-fetch=\(background ? "on" : "off")"])
        }

        func log(_ name: String) -> String {
            (try? String(decoding: FileIO.readAll(temp.child("\(name).log")), as: UTF8.self)) ?? ""
        }
    }

    @Test("an index pushed by one cache makes a fresh cache's mount fetch a small part of the blobs, with the same tree")
    func publishedIndexMakesAFreshMountLazy() throws {
        let s = try Setup(spread: true)
        let artifact = try s.index(cache: "publisher", push: true)
        #expect(artifact.hasPrefix("sha256:") && artifact.count == 71, "\(artifact)")
        // Published gzip indexes are denser than local ones (1 MiB): rebuilt so when pushed.
        let report = try StrataBinary.run(["index", "--json", "--tls-verify=false", "--cache", s.temp.child("publisher"), s.direct])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.stdout)) as? [String: Any], "\(report.stderr)")
        let layers = try #require(json["layers"] as? [[String: Any]])
        let big = try #require(layers.first { $0["digest"] as? String == s.bigLayer.descriptor.digest.description })
        let checkpoints = try #require(big["checkpoints"] as? Int), tar = try #require(big["uncompressedSize"] as? Int)
        #expect(checkpoints >= tar / (512 << 10), "\(checkpoints) checkpoints for \(tar) bytes of tar")

        let before = try s.proxy.statistics()
        let m = try s.mount(cache: "fresh", at: "mnt", background: false)
        let status = try StatusReport.read(s.temp.child("mnt"))
        #expect(status.text(s.bigLayer.descriptor.digest, "index") == "artifact", "\(status.json)")
        #expect(try FileIO.readAll(s.temp.child("mnt/etc/os-release")) == Array("ID=strata-test\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small2")) == Array("second small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt/usr/bin/tool")) == Array("#!/bin/sh\necho tool\n".utf8))
        let after = try s.proxy.statistics()
        let fetched = after.blobBytes - before.blobBytes
        // The indexes and a few spans, not the layers: a quarter of the blobs at most.
        #expect(fetched < s.blobBytes / 4, "fetched \(fetched) of \(s.blobBytes) blob bytes: \(after.log.suffix(20))")

        let rootfs = try Umoci.unpack(layout: s.temp.child("layout"), tag: "v1", into: s.temp.child("umoci"))
        let reference = try TreeSnapshot.capture(root: rootfs)
        var ignores = MountComparison.rootIgnores
        for entry in reference.entries.values where entry.type == .directory && entry.mtimeSeconds >= Int64(time(nil)) - 600 {
            ignores[entry.pathString, default: []].insert(.mtime)
        }
        let tree = try TreeSnapshot.capture(root: s.temp.child("mnt"))
        try m.unmount()
        let diffs = reference.differences(from: tree, ignoring: [], ignoringAt: ignores)
        #expect(diffs.isEmpty, "mount from a published index: \(diffs)")
    }

    @Test("a forged index artifact: once the background fetch completes the blob, the layer gets EIO and the log says why")
    func forgedIndexArtifactIsRejected() throws {
        let s = try Setup()
        // The publisher's cache holds an index of the big layer with one window altered (every
        // checksum and span digest consistent, so it parses), and publishes it.
        try s.index(cache: "publisher", push: true)   // at the published spacing, so the next push keeps it
        try IndexForgery.forge(path: s.temp.child("publisher/index/sha256/\(s.bigLayer.descriptor.digest.hex)"))
        try s.index(cache: "publisher", push: true)

        let m = try s.mount(cache: "victim", at: "mnt", background: true)
        let big = s.bigLayer.descriptor.digest
        let settled = Mounts.waitUntil(seconds: 60) {
            let v = try? StatusReport.read(s.temp.child("mnt")).text(big, "verification")
            return v != nil && v != "pending" && v != "verifying"
        }
        let status = try StatusReport.read(s.temp.child("mnt"))
        #expect(settled, "\(status.json)")
        #expect(status.text(big, "index") == "artifact", "\(status.json)")
        #expect(status.text(big, "verification") != "verified", "\(status.json)")
        #expect {
            _ = try FileIO.readAll(s.temp.child("mnt/data/big1"))
        } throws: { error in (error as? SystemError)?.code == EIO }
        // The other layer is fine.
        #expect(try FileIO.readAll(s.temp.child("mnt/etc/os-release")) == Array("ID=strata-test\n".utf8))
        try m.unmount()
        #expect(s.log("mnt").contains("differs from the one derived from the verified blob"), "\(s.log("mnt"))")
        // Nothing forged stays cached.
        #expect(!FileIO.exists(s.temp.child("victim/index/sha256/\(big.hex)")))
    }

    @Test("a mount records its first reads; index --push publishes them; a fresh cache's mount prefetches them before they are read")
    func prefetchListRecordedPublishedReplayed() throws {
        let s = try Setup(spread: true)
        let big = s.bigLayer.descriptor.digest
        try s.index(cache: "publisher", push: true)
        let first = try s.mount(cache: "first", at: "mnt", background: false)
        let manifest = try #require(try StatusReport.read(s.temp.child("mnt")).json["manifestDigest"] as? String)
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt/data/b5")).count == 4 << 20)
        try first.unmount()
        let listPath = s.temp.child("first/prefetch/sha256/\(manifest.dropFirst(7)).json")
        // The serving process stores the list as it ends, just after the mount is gone.
        #expect(Mounts.waitUntil(seconds: 20) { FileIO.exists(listPath) }, "no prefetch list at \(listPath)")
        let list = try #require(try JSONSerialization.jsonObject(with: Data(FileIO.readAll(listPath))) as? [String: Any])
        let ranges = list["ranges"] as? [[String: Any]] ?? []
        let listed = ranges.filter { $0["layer"] as? String == big.description }.reduce(UInt64(0)) {
            $0 + ((($1["length"] as? NSNumber)?.uint64Value) ?? 0)
        }
        // b5's spans (its 4 MiB compress to about 2.7 MB): what the reads needed, not more.
        #expect(listed >= 2 << 20 && listed < 4 << 20, "\(list)")

        // The first machine publishes its index with the list; another mounts from a fresh cache.
        try s.index(cache: "first", push: true)
        let second = try s.mount(cache: "second", at: "mnt2", background: false)
        let done = Mounts.waitUntil(seconds: 60) {
            // Consecutive spans may share a byte (listed twice, fetched once).
            ((try? StatusReport.read(s.temp.child("mnt2")).number(big, "prefetchBytes")) ?? 0) + UInt64(ranges.count) >= listed
        }
        let before = try StatusReport.read(s.temp.child("mnt2"))
        #expect(done, "\(before.json)")
        #expect(before.number(big, "onDemandBytes") == 0, "\(before.json)")
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/small")) == Array("small file\n".utf8))
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/b5")).count == 4 << 20)
        let after = try StatusReport.read(s.temp.child("mnt2"))
        #expect(after.number(big, "onDemandBytes") == 0, "the reads the list holds were fetched again: \(after.json)")
        try second.unmount()
    }

    @Test("a forged index artifact left unconfirmed by a short first mount is caught by a later mount's background fetch")
    func forgedIndexCaughtOnALaterMount() throws {
        let s = try Setup()
        try s.index(cache: "publisher", push: true)   // at the published spacing, so the next push keeps it
        try IndexForgery.forge(path: s.temp.child("publisher/index/sha256/\(s.bigLayer.descriptor.digest.hex)"))
        try s.index(cache: "publisher", push: true)
        let big = s.bigLayer.descriptor.digest

        // A container that exits at once: the blob never completes, the index stays unconfirmed.
        let first = try s.mount(cache: "victim", at: "mnt", background: false)
        #expect(try StatusReport.read(s.temp.child("mnt")).text(big, "index") == "artifact")
        try first.unmount()

        let second = try s.mount(cache: "victim", at: "mnt2", background: true)
        let settled = Mounts.waitUntil(seconds: 60) {
            let v = try? StatusReport.read(s.temp.child("mnt2")).text(big, "verification")
            return v != nil && v != "pending" && v != "verifying"
        }
        let status = try StatusReport.read(s.temp.child("mnt2"))
        #expect(settled, "\(status.json)")
        #expect(status.text(big, "verification") != "verified", "\(status.json)")
        #expect {
            _ = try FileIO.readAll(s.temp.child("mnt2/data/big1"))
        } throws: { error in (error as? SystemError)?.code == EIO }
        try second.unmount()
        #expect(s.log("mnt2").contains("differs from the one derived from the verified blob"), "\(s.log("mnt2"))")
        #expect(!FileIO.exists(s.temp.child("victim/index/sha256/\(big.hex)")))
    }
}
