#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSeekable
import StrataSystem
import StrataTestSupport
import Testing

/// Issue 12: `docker://` mounts of eStargz and zstd:chunked images start from the layers' TOCs
/// (a few small range requests per layer, counted at a proxy), give the tree `umoci unpack`
/// gives, fetch only what is read, and a TOC listing an entry the stream does not hold is caught
/// by the background pass (the layer gets EIO, its cache files are dropped).
@Suite(.mountTimeLimit, .serialized,
       .enabled(if: getuid() == 0 && StrataBinary.isBuilt && TestRegistry.isAvailable && Umoci.isAvailable,
                "needs root, a built strata, umoci, docker-registry, python3, skopeo, htpasswd and openssl"))
struct SeekableRegistryMountTests {
    static let plain = ["--tls-verify=false"]
    static let big = Items.pseudoRandom(count: 2 << 20, seed: 21)
    static let lower: [TarItem] = [
        Items.dir("etc"), Items.file("etc/os-release", "ID=strata-test\n"), Items.dir("usr"), Items.dir("usr/bin"),
        Items.file("usr/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755), Items.symlink("bin", to: "usr/bin"),
        Items.file("etc/gone", "removed above\n"), Items.hardlink("etc/os-release.link", to: "etc/os-release"),
    ]
    static let upper: [TarItem] = [
        Items.dir("data"), Items.file(Array("data/big".utf8), big), Items.file("data/small", "small file\n"),
        Items.whiteout("etc/gone"),
    ]

    static func fixture(_ format: TableOfContents.Format, _ items: [TarItem],
                        estargzTOC: (inout EStargzTOC) -> Void = { _ in }) throws -> SeekableBlob {
        format == .estargz ? try SeekableFixture.estargz(items, editTOC: estargzTOC) : try SeekableFixture.zstdChunked(items)
    }

    /// The layout (tag v1, and for zstd:chunked a gzip twin "ref" for umoci), pushed as app:v1.
    struct Setup {
        let temp: TempDirectory
        let registry: TestRegistry
        let proxy: RegistryProxy
        let builder: ImageBuilder
        let blobs: [SeekableBlob]
        let referenceTag: String

        init(_ format: TableOfContents.Format, blobs: [SeekableBlob]? = nil, annotate: Bool = true) throws {
            temp = try TempDirectory()
            registry = try TestRegistry()
            builder = try ImageBuilder(layout: temp.child("layout"))
            var made = try blobs ?? [SeekableRegistryMountTests.fixture(format, lower), SeekableRegistryMountTests.fixture(format, upper)]
            if !annotate { for i in made.indices { made[i].annotations = [:] } }
            self.blobs = made
            for b in made { try builder.addSeekableLayer(b) }
            try builder.write(tag: "v1")
            try registry.push(layout: builder.reference("v1"), reference: "app:v1")
            referenceTag = format == .zstdChunked ? "ref" : "v1"
            if format == .zstdChunked {
                builder.layers = []
                for b in made { try builder.addLayer(tar: b.tar, compression: .gzip) }
                try builder.write(tag: "ref")
            }
            proxy = try RegistryProxy(registry)
        }

        func mount(at name: String, background: Bool) throws -> MountGuard {
            try MountGuard(image: proxy.reference("app:v1"), mountpoint: temp.child(name),
                           extraArgs: plain + ["--cache", temp.child("cache-\(name)"), "--log", temp.child("\(name).log"),
                                               "--background-fetch=\(background ? "on" : "off")"])
        }

        func log(_ name: String) -> String {
            (try? String(decoding: FileIO.readAll(temp.child("\(name).log")), as: UTF8.self)) ?? ""
        }

        func digest(_ i: Int) -> Digest { Digest.sha256(of: blobs[i].blob) }
    }

    static func status(_ mountpoint: String) throws -> [String: Any] {
        let r = try StrataBinary.subcommand("status", ["--json", mountpoint])
        guard r.succeeded, let json = try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any] else {
            throw HarnessError("strata status \(mountpoint) failed: \(r.stderr)")
        }
        return json
    }

    static func layer(_ json: [String: Any], _ digest: Digest) -> [String: Any] {
        (json["layers"] as? [[String: Any]] ?? []).first { $0["digest"] as? String == digest.description } ?? [:]
    }

    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func mountStartsFromTheTOCsAndMatchesUmoci(_ format: TableOfContents.Format) throws {
        let s = try Setup(format)
        let rootfs = try Umoci.unpack(layout: s.temp.child("layout"), tag: s.referenceTag, into: s.temp.child("umoci"))
        let reference = try TreeSnapshot.capture(root: rootfs)
        let started = time(nil)
        var ignores = MountComparison.rootIgnores
        for entry in reference.entries.values where entry.type == .directory && entry.mtimeSeconds >= Int64(started) - 600 {
            ignores[entry.pathString, default: []].insert(.mtime)
        }
        let before = try s.proxy.statistics()
        let mount = try s.mount(at: "mnt", background: false)
        defer { try? mount.unmount() }
        // Before any read: a few small range requests per layer (the footer and the TOC), plus the config.
        let atStart = try s.proxy.statistics()
        let total = s.blobs.reduce(0) { $0 + $1.blob.count }
        let requests = atStart.blobRequests - before.blobRequests
        let bytes = atStart.blobBytes - before.blobBytes
        #expect(requests <= 2 * s.blobs.count + 1, "\(requests) blob requests before the first read")
        #expect(bytes < total / 10, "\(bytes) of \(total) blob bytes fetched before the first read")
        let status = try Self.status(s.temp.child("mnt"))
        for i in s.blobs.indices {
            #expect(Self.layer(status, s.digest(i))["index"] as? String == "toc", "\(status)")
            #expect(Self.layer(status, s.digest(i))["lazy"] as? Bool == true)
        }
        // A small file fetches its chunk (a request of at least 256 KiB), not the layer.
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        let afterSmall = try s.proxy.statistics()
        #expect(afterSmall.blobBytes - atStart.blobBytes < s.blobs[1].blob.count / 2,
                "\(afterSmall.blobBytes - atStart.blobBytes) bytes fetched for one small file")
        let mounted = try TreeSnapshot.capture(root: s.temp.child("mnt"))
        try mount.unmount()
        let diffs = reference.differences(from: mounted, ignoring: [], ignoringAt: ignores)
        #expect(diffs.isEmpty, "\(diffs)")
    }

    /// Without the TOC digest annotation the footer is not trusted: the layer is streamed.
    @Test func withoutAnnotationTheLayerIsStreamed() throws {
        let s = try Setup(.estargz, annotate: false)
        let mount = try s.mount(at: "mnt", background: false)
        defer { try? mount.unmount() }
        let status = try Self.status(s.temp.child("mnt"))
        #expect(Self.layer(status, s.digest(1))["index"] as? String == "streamed", "\(status)")
        #expect(try FileIO.readAll(s.temp.child("mnt/data/big")) == Self.big)
        try mount.unmount()
    }

    /// A TOC entry the tar stream does not hold: served from the TOC at first, caught when the
    /// background pass has the whole blob; the layer then gets EIO, the log says why, and its
    /// blob and index leave the cache.
    @Test func anEntryTheStreamDoesNotHoldIsCaughtInTheBackground() throws {
        var upper = try Self.fixture(.estargz, Self.upper) { toc in
            var phantom = EStargzTOCEntry(name: "data/phantom", type: .dir)
            phantom.mode = 0o755
            toc.entries.insert(phantom, at: 1)
        }
        upper.annotations[EStargz.uncompressedSizeAnnotation] = nil
        let s = try Setup(.estargz, blobs: [try Self.fixture(.estargz, Self.lower), upper])
        let mount = try s.mount(at: "mnt", background: true)
        defer { try? mount.unmount() }
        let failed = Mounts.waitUntil(seconds: 60) {
            (try? Self.layer(Self.status(s.temp.child("mnt")), s.digest(1))["verification"] as? String) == "failed"
        }
        #expect(failed, "\((try? Self.status(s.temp.child("mnt"))) ?? [:])")
        #expect(readError(s.temp.child("mnt/data/big")) == EIO)
        try mount.unmount()
        let log = s.log("mnt")
        #expect(log.contains("its TOC does not match its tar stream") && log.contains("data/phantom"), "\(log)")
        #expect(!FileIO.exists(s.temp.child("cache-mnt") + "/index/sha256/" + s.digest(1).hex))
    }

    /// eStargz's prefetch landmark: right after mounting, the files before it are fetched in one
    /// request (prefetch); reading them then fetches nothing on demand.
    @Test func landmarkRangeIsPrefetchedInOneRequest() throws {
        let early = Items.pseudoRandom(count: 100_000, seed: 31)
        let blob = try SeekableFixture.estargz([
            Items.file(Array("early".utf8), early), Items.file(Array(EStargz.prefetchLandmark.utf8), [EStargz.landmarkContents]),
            Items.file(Array("late".utf8), Items.pseudoRandom(count: 1 << 20, seed: 32)),
        ])
        let bytes = blob.blob
        let (toc, _) = try #require(try TableOfContents.read(annotations: blob.annotations, blobSize: UInt64(bytes.count)) { r in
            Array(bytes[Int(r.lowerBound)..<Int(r.upperBound)])
        })
        let landmark = try #require(toc.prefetch.first)
        #expect(landmark.lowerBound == 0 && landmark.upperBound > 100_000 / 2)
        let s = try Setup(.estargz, blobs: [blob])
        let mount = try s.mount(at: "mnt", background: false)
        defer { try? mount.unmount() }
        let prefetched = Mounts.waitUntil(seconds: 30) {
            ((try? Self.layer(Self.status(s.temp.child("mnt")), s.digest(0))["prefetchBytes"] as? NSNumber)?.uint64Value ?? 0) > 0
        }
        let status = Self.layer(try Self.status(s.temp.child("mnt")), s.digest(0))
        #expect(prefetched, "\(status)")
        #expect(((status["prefetchBytes"] as? NSNumber)?.uint64Value ?? 0) >= landmark.upperBound, "\(status)")
        #expect((status["requests"] as? NSNumber)?.intValue == 1, "\(status)")
        #expect(try FileIO.readAll(s.temp.child("mnt/early")) == early)
        let after = Self.layer(try Self.status(s.temp.child("mnt")), s.digest(0))
        #expect((after["onDemandBytes"] as? NSNumber)?.uint64Value == 0, "\(after)")
        try mount.unmount()
    }

    /// `convert --record-in`: right after mounting, the recorded files' range of each layer (up to
    /// the eStargz landmark, or the zstd:chunked `org.strata.prefetch-end` annotation) is
    /// prefetched; reading those files then fetches nothing on demand.
    @Test(arguments: ["estargz", "zstd:chunked"])
    func recordedFilesArePrefetchedRightAfterMounting(_ compression: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: Self.lower)
        try builder.addLayer(entries: Self.upper + [Items.file(Array("data/late".utf8), Items.pseudoRandom(count: 1 << 20, seed: 22))])
        try builder.write(tag: "test")
        let record = temp.child("reads.txt")
        try FileIO.writeAtomically(record, Array("data/big\nusr/bin/tool\ndata/small\n".utf8))
        let r = try StrataBinary.run(["convert", "--compression", compression, "--record-in", record,
                                      builder.reference("test"), "converted"], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let image = try ImageResolver.resolve(reference: builder.reference("converted"))
        // Where each layer's prefetch range ends, as a reader of the converted blob finds it.
        let ends = try image.layers.map { layer -> UInt64 in
            let bytes = try FileIO.readAll(builder.blobPath(layer.descriptor.digest))
            let (toc, _) = try #require(try TableOfContents.read(annotations: layer.descriptor.annotations ?? [:],
                                                                 blobSize: UInt64(bytes.count)) { r in
                Array(bytes[Int(r.lowerBound)..<Int(r.upperBound)])
            })
            return try #require(toc.prefetch.first?.upperBound)
        }
        #expect(ends.allSatisfy { $0 > 0 })
        let registry = try TestRegistry()
        try registry.push(layout: builder.reference("converted"), reference: "prio:v1")
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: registry.reference("prio:v1"), mountpoint: mnt,
                                   extraArgs: Self.plain + ["--cache", temp.child("cache"), "--background-fetch=off"])
        defer { try? mount.unmount() }
        let prefetched = Mounts.waitUntil(seconds: 60) {
            guard let s = try? Self.status(mnt) else { return false }
            return zip(image.layers, ends).allSatisfy { layer, end in
                ((Self.layer(s, layer.descriptor.digest)["prefetchBytes"] as? NSNumber)?.uint64Value ?? 0) >= end
            }
        }
        #expect(prefetched, "\((try? Self.status(mnt)) ?? [:])")
        #expect(try FileIO.readAll(mnt + "/data/big") == Self.big)
        #expect(try FileIO.readAll(mnt + "/usr/bin/tool") == Array("#!/bin/sh\necho tool\n".utf8))
        #expect(try FileIO.readAll(mnt + "/data/small") == Array("small file\n".utf8))
        let status = try Self.status(mnt)
        for layer in image.layers {
            #expect((Self.layer(status, layer.descriptor.digest)["onDemandBytes"] as? NSNumber)?.uint64Value == 0, "\(status)")
        }
        try mount.unmount()
    }

    /// A TOC whose digest is not the annotation's: the mount is refused, one line naming the layer.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func aTOCDigestMismatchRefusesTheMount(_ format: TableOfContents.Format) throws {
        var blob = try Self.fixture(format, Self.upper)
        let key = format == .estargz ? EStargz.tocDigestAnnotation : ZstdChunked.Dialect.legacy.manifestChecksumKey
        blob.annotations[key] = "sha256:" + String(repeating: "0f", count: 32)
        let s = try Setup(format, blobs: [blob])
        let mnt = try s.temp.makeDirectory("mnt")
        let r = try StrataBinary.run(["mount"] + Self.plain + ["--cache", s.temp.child("cache"), s.proxy.reference("app:v1"), mnt])
        if r.status == 0 { _ = try? StrataBinary.run(["unmount", mnt]) }
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("layer sha256:\(s.digest(0).hex)")
                && r.stderr.contains("TOC digest mismatch"), "\(r.stderr)")
    }

    /// Images `strata convert` wrote (seekwrite's writers), pushed with skopeo: mounted from
    /// their TOCs, the tree umoci gives of the source, and the background pass verifies them
    /// (sha256, diff_id, the TOC's entries against the stream's).
    @Test(arguments: ["estargz", "zstd:chunked"])
    func convertedImagesMountFromTheirTOCsAndVerify(_ compression: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: Self.lower)
        try builder.addLayer(entries: Self.upper + [Items.file("data/nano", "sub-second mtime\n", nanoseconds: 987_654_321)])
        try builder.write(tag: "test")
        let r = try StrataBinary.run(["convert", "--compression", compression, builder.reference("test"), "converted"], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let registry = try TestRegistry()
        try registry.push(layout: builder.reference("converted"), reference: "conv:v1")
        let image = try ImageResolver.resolve(reference: builder.reference("converted"))
        let rootfs = try Umoci.unpack(layout: builder.layout, tag: compression == "estargz" ? "converted" : "test", into: temp.child("umoci"))
        let reference = try TreeSnapshot.capture(root: rootfs)
        let started = time(nil)
        var ignores = MountComparison.rootIgnores
        for entry in reference.entries.values where entry.type == .directory && entry.mtimeSeconds >= Int64(started) - 600 {
            ignores[entry.pathString, default: []].insert(.mtime)
        }
        // eStargz TOCs hold whole seconds.
        if compression == "estargz" { ignores["data/nano", default: []].insert(.mtime) }
        let mnt = temp.child("mnt")
        let mount = try MountGuard(image: registry.reference("conv:v1"), mountpoint: mnt,
                                   extraArgs: Self.plain + ["--cache", temp.child("cache"), "--log", temp.child("log"), "--background-fetch=on"])
        defer { try? mount.unmount() }
        let status = try Self.status(mnt)
        for layer in image.layers {
            #expect(Self.layer(status, layer.descriptor.digest)["index"] as? String == "toc", "\(status)")
        }
        let mounted = try TreeSnapshot.capture(root: mnt)
        let diffs = reference.differences(from: mounted, ignoring: [], ignoringAt: ignores)
        #expect(diffs.isEmpty, "\(diffs)")
        let verified = Mounts.waitUntil(seconds: 90) {
            guard let s = try? Self.status(mnt) else { return false }
            return image.layers.allSatisfy { Self.layer(s, $0.descriptor.digest)["verification"] as? String == "verified" }
        }
        let log = (try? String(decoding: FileIO.readAll(temp.child("log")), as: UTF8.self)) ?? ""
        #expect(verified, "\((try? Self.status(mnt)) ?? [:])\n\(log)")
        try mount.unmount()
    }
}
