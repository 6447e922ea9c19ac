#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSystem
import StrataTestSupport
import Testing

/// Issue 11: `docker://` images mounted straight from a registry (Debian's docker-registry on
/// 127.0.0.1, images built in code and pushed with skopeo). Every test stops its registry and
/// unmounts what it mounted.
@Suite(.mountTimeLimit, .serialized,
       .enabled(if: getuid() == 0 && StrataBinary.isBuilt && TestRegistry.isAvailable && Umoci.isAvailable,
                "needs root, a built strata, umoci, docker-registry, python3, skopeo, htpasswd and openssl"))
struct RegistryMountTests {
    static let plain = ["--tls-verify=false"]

    /// A registry holding RegistryImage as app:v1, and its layout; mounts go through a proxy
    /// that can take the registry down.
    struct Setup {
        let temp: TempDirectory
        let registry: TestRegistry
        let proxy: RegistryProxy
        let image: ImageBuilder
        var reference: String { proxy.reference("app:v1") }
        var bigLayer: ImageBuilder.Layer { image.layers[1] }

        init() throws {
            temp = try TempDirectory()
            registry = try TestRegistry()
            image = try RegistryImage.make(layout: temp.child("layout"))
            try registry.push(layout: image.reference("v1"), reference: "app:v1")
            proxy = try RegistryProxy(registry)
        }

        /// Mounts the image with cache `cache`; background fetch as asked; log in the temp dir.
        func mount(cache: String, at name: String, background: Bool = true, extra: [String] = []) throws -> MountGuard {
            try MountGuard(image: reference, mountpoint: temp.child(name),
                           extraArgs: plain + ["--cache", temp.child(cache), "--log", temp.child("\(name).log"),
                                               "--background-fetch=\(background ? "on" : "off")"] + extra)
        }

        func log(_ name: String) -> String {
            (try? String(decoding: FileIO.readAll(temp.child("\(name).log")), as: UTF8.self)) ?? ""
        }

        /// A cache with the indexes a first (streaming) mount made, and no blob data.
        func indexedCache(_ name: String) throws -> String {
            let first = try mount(cache: "first-cache", at: "first")
            try first.unmount()
            try RegistryImage.indexOnlyCache(from: temp.child("first-cache"), to: temp.child(name))
            return temp.child(name)
        }
    }

    /// Point 1 and 7: the mount gives the tree `umoci unpack` gives of the same image, both on the
    /// first mount (layers streamed, indexed as they download) and on a lazy one (index cached).
    @Test func mountMatchesUmociUnpack() throws {
        let s = try Setup()
        let rootfs = try Umoci.unpack(layout: s.temp.child("layout"), tag: "v1", into: s.temp.child("umoci"))
        let reference = try TreeSnapshot.capture(root: rootfs)
        let started = time(nil)
        var ignores = MountComparison.rootIgnores
        for entry in reference.entries.values where entry.type == .directory && entry.mtimeSeconds >= Int64(started) - 600 {
            ignores[entry.pathString, default: []].insert(.mtime)
        }
        let streamed = try s.mount(cache: "cache", at: "mnt")
        let status = try StatusReport.read(s.temp.child("mnt"))
        #expect(status.json["source"] as? String == "registry")
        #expect(status.text(s.bigLayer.descriptor.digest, "index") == "streamed")
        #expect(status.text(s.bigLayer.descriptor.digest, "notLazyReason") == "no index published; streamed whole")
        let first = try TreeSnapshot.capture(root: s.temp.child("mnt"))
        try streamed.unmount()
        let diffs = reference.differences(from: first, ignoring: [], ignoringAt: ignores)
        #expect(diffs.isEmpty, "streamed mount: \(diffs)")

        try RegistryImage.indexOnlyCache(from: s.temp.child("cache"), to: s.temp.child("lazy-cache"))
        let lazy = try s.mount(cache: "lazy-cache", at: "mnt2", background: false)
        #expect(try StatusReport.read(s.temp.child("mnt2")).text(s.bigLayer.descriptor.digest, "index") == "cache")
        let second = try TreeSnapshot.capture(root: s.temp.child("mnt2"))
        try lazy.unmount()
        let lazyDiffs = reference.differences(from: second, ignoring: [], ignoringAt: ignores)
        #expect(lazyDiffs.isEmpty, "lazy mount: \(lazyDiffs)")
    }

    /// Point 5: a lazy mount fetches only what is read (status: present grows, under the size);
    /// with `--background-fetch=off` the blob stays partial; with it on, the blob completes
    /// and is verified.
    @Test func statusShowsPartialBlobThenCompletionAndVerification() throws {
        let s = try Setup()
        let cache = try s.indexedCache("cache")
        let big = s.bigLayer.descriptor.digest
        let size = UInt64(s.bigLayer.descriptor.size)

        let off = try s.mount(cache: "cache", at: "mnt", background: false)
        let before = try StatusReport.read(s.temp.child("mnt"))
        #expect(before.text(big, "background") == "off")
        #expect(before.text(big, "verification") == "pending")
        #expect(before.layer(big)?["lazy"] as? Bool == true)
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        let after = try StatusReport.read(s.temp.child("mnt"))
        let present = after.number(big, "present")
        #expect(present > before.number(big, "present"), "reading fetched nothing: \(after.json)")
        #expect(present < size, "the whole blob was fetched for one small file: \(after.json)")
        #expect(after.number(big, "onDemandBytes") > 0)
        #expect((after.json["requests"] as? Int ?? 0) > 0)
        #expect(after.layer(big)?["complete"] as? Bool == false)
        try off.unmount()
        // Not fetched since: the blob is still partial in the cache.
        #expect(Self.fileBlocks(cache + "/blobs/sha256/" + big.hex) < size)

        let on = try s.mount(cache: "cache", at: "mnt2", background: true)
        let done = Mounts.waitUntil(seconds: 60) {
            (try? StatusReport.read(s.temp.child("mnt2")).text(big, "verification")) == "verified"
        }
        let final = try StatusReport.read(s.temp.child("mnt2"))
        #expect(done, "not verified: \(final.json)")
        #expect(final.layer(big)?["complete"] as? Bool == true)
        #expect(final.number(big, "present") == size)
        #expect(final.text(big, "background") == "done")
        #expect(final.number(big, "backgroundBytes") > 0)
        #expect(try FileIO.readAll(s.temp.child("mnt2/data/big2")) == RegistryImage.big2)
        try on.unmount()
    }

    /// Warm start (goal: as fast as a local layout): with the indexes, blobs, manifest and
    /// config in the cache, a mount asks the registry one thing, what the tag names now (no
    /// `/v2/` ping, no manifest by digest, no config, no referrers); a digest reference asks
    /// nothing. The tag is still resolved every time: a tag moved to another image is seen.
    @Test func warmMountAsksOnlyWhatTheTagNames() throws {
        let s = try Setup()
        let warm = try StrataBinary.run(["index"] + Self.plain + ["--cache", s.temp.child("cache"), s.reference])
        #expect(warm.succeeded, "\(warm.stderr)")

        var before = try s.proxy.statistics().requests
        let m = try s.mount(cache: "cache", at: "mnt")
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        try m.unmount()
        var stats = try s.proxy.statistics()
        #expect(stats.requests - before == 1, "\(stats.log.suffix(stats.requests - before))")
        #expect(stats.log.last?.contains("/manifests/v1") == true, "\(stats.log.suffix(3))")

        let digest = try ImageResolver.resolve(reference: s.image.reference("v1")).manifestDigest
        before = stats.requests
        let pinned = try MountGuard(image: s.proxy.reference("app@\(digest)"), mountpoint: s.temp.child("pinned"),
                                    extraArgs: Self.plain + ["--cache", s.temp.child("cache")])
        #expect(try FileIO.readAll(s.temp.child("pinned/etc/os-release")) == Array("ID=strata-test\n".utf8))
        try pinned.unmount()
        stats = try s.proxy.statistics()
        #expect(stats.requests == before, "\(stats.log.suffix(stats.requests - before))")

        // The tag moves to another image: the next mount serves it.
        let other = try ImageBuilder(layout: s.temp.child("other"))
        try other.addLayer(entries: [Items.dir("etc"), Items.file("etc/os-release", "ID=moved\n")])
        try other.write(tag: "v2")
        _ = try s.registry.push(layout: other.reference("v2"), reference: "app:v1")
        let moved = try s.mount(cache: "cache", at: "moved")
        #expect(try FileIO.readAll(s.temp.child("moved/etc/os-release")) == Array("ID=moved\n".utf8))
        try moved.unmount()
    }

    /// A bundle of a tag this cache resolved before mounts what the tag named then while the
    /// registry is asked (`--pull=always`, the default), and is the tag's current image all the
    /// same: a moved tag gives a bundle of the new image; a registry that cannot answer gives the
    /// error and no bundle, nothing left mounted.
    @Test func bundleOfAKnownTagFollowsAMoveAndFailsWithTheRegistry() throws {
        let s = try Setup()
        let cache = ["--read-only", "--cache", s.temp.child("cache")]
        let first = try StrataBundleFixture(image: s.reference, directory: s.temp.child("b1"), args: Self.plain + cache)
        #expect(try FileIO.readAll(first.rootfs + "/etc/os-release") == Array("ID=strata-test\n".utf8))
        try first.remove()

        let other = try ImageBuilder(layout: s.temp.child("other"))
        try other.addLayer(entries: [Items.dir("etc"), Items.file("etc/os-release", "ID=moved\n")])
        try other.write(tag: "v2")
        _ = try s.registry.push(layout: other.reference("v2"), reference: "app:v1")
        let movedDigest = try ImageResolver.resolve(reference: other.reference("v2")).manifestDigest
        let before = try s.proxy.statistics().requests
        let moved = try StrataBundleFixture(image: s.reference, directory: s.temp.child("b2"), args: Self.plain + cache + ["--json"])
        #expect(try FileIO.readAll(moved.rootfs + "/etc/os-release") == Array("ID=moved\n".utf8))
        let report = try #require(try JSONSerialization.jsonObject(with: Data(moved.result.stdout)) as? [String: Any])
        #expect(report["manifestDigest"] as? String == movedDigest.description, "\(report)")
        let stats = try s.proxy.statistics()
        #expect(stats.log.suffix(stats.requests - before).contains { $0.contains("/manifests/v1") }, "\(stats.log.suffix(5))")
        try moved.remove()

        s.proxy.stop()
        let down = try StrataBinary.run(["bundle"] + Self.plain + cache + [s.reference, s.temp.child("b3")], timeout: 120)
        #expect(down.status == 1, "\(down.stderr)")
        #expect(down.stderr.contains("127.0.0.1"), "\(down.stderr)")
        #expect(!Mounts.isMounted(s.temp.child("b3/rootfs")) && !FileIO.exists(s.temp.child("b3/config.json")))
    }

    /// `--pull=missing` (podman's policy): a tag this cache resolved before is served as it was
    /// resolved, with no request at all, even after the tag moved; the default (`always`) sees the
    /// move and records it, which `missing` then serves. `--pull=never` on a tag the cache never
    /// resolved is an error naming it; an unknown policy is a usage error.
    @Test func pullMissingAsksNothingForATagResolvedBefore() throws {
        let s = try Setup()
        let warm = try StrataBinary.run(["index"] + Self.plain + ["--cache", s.temp.child("cache"), s.reference])
        #expect(warm.succeeded, "\(warm.stderr)")

        var before = try s.proxy.statistics().requests
        let m = try s.mount(cache: "cache", at: "mnt", extra: ["--pull=missing"])
        #expect(try FileIO.readAll(s.temp.child("mnt/etc/os-release")) == Array("ID=strata-test\n".utf8))
        try m.unmount()
        var stats = try s.proxy.statistics()
        #expect(stats.requests == before, "\(stats.log.suffix(stats.requests - before))")

        // The tag moves: missing still serves what this cache resolved, asking nothing.
        let other = try ImageBuilder(layout: s.temp.child("other"))
        try other.addLayer(entries: [Items.dir("etc"), Items.file("etc/os-release", "ID=moved\n")])
        try other.write(tag: "v2")
        _ = try s.registry.push(layout: other.reference("v2"), reference: "app:v1")
        before = try s.proxy.statistics().requests
        let kept = try s.mount(cache: "cache", at: "kept", extra: ["--pull=missing"])
        #expect(try FileIO.readAll(s.temp.child("kept/etc/os-release")) == Array("ID=strata-test\n".utf8))
        try kept.unmount()
        stats = try s.proxy.statistics()
        #expect(stats.requests == before, "\(stats.log.suffix(stats.requests - before))")

        // always (the default) sees the move and records it; missing serves the new image then.
        let moved = try s.mount(cache: "cache", at: "moved")
        #expect(try FileIO.readAll(s.temp.child("moved/etc/os-release")) == Array("ID=moved\n".utf8))
        try moved.unmount()
        let after = try s.mount(cache: "cache", at: "after", extra: ["--pull=never"])
        #expect(try FileIO.readAll(s.temp.child("after/etc/os-release")) == Array("ID=moved\n".utf8))
        try after.unmount()

        let never = try StrataBinary.run(["inspect"] + Self.plain + ["--pull=never", "--cache", s.temp.child("fresh"), s.reference])
        #expect(never.status == 1, "\(never.stderr)")
        #expect(never.stderr.contains("app") && never.stderr.contains("v1") && never.stderr.contains("--pull=never"), "\(never.stderr)")
        let bogus = try StrataBinary.run(["inspect"] + Self.plain + ["--pull=sometimes", s.reference])
        #expect(bogus.status == 2, "\(bogus.stderr)")
        #expect(bogus.stderr.contains("--pull=sometimes"), "\(bogus.stderr)")
    }

    /// A reader going densely through a file of a lazy blob (as a program maps a library) gets
    /// no span fetched ahead of it: until a stream has read 16 MiB, read-ahead decodes only
    /// spans already fetched. (Before, the span after each one read was fetched as read-ahead:
    /// 3–5 MB of a python start's 27 MB.) Everything fetched is on demand.
    @Test func denseReadOfALazyFileFetchesNothingAhead() throws {
        let s = try Setup()
        _ = try s.indexedCache("cache")
        let big = s.bigLayer.descriptor.digest
        let m = try s.mount(cache: "cache", at: "mnt", background: false)
        #expect(try FileIO.readAll(s.temp.child("mnt/data/big1")) == RegistryImage.big1)
        let status = try StatusReport.read(s.temp.child("mnt"))
        #expect(status.number(big, "prefetchBytes") == 0, "\(status.json)")
        let present = status.number(big, "present"), size = UInt64(s.bigLayer.descriptor.size)
        #expect(present > 0 && status.number(big, "onDemandBytes") >= present, "\(status.json)")
        #expect(present < size - size / 4, "big2 was fetched too: \(status.json)")
        try m.unmount()
    }

    /// Point 5: a local layout's mount answers status too, everything present.
    @Test func localMountAnswersStatus() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try RegistryImage.make(layout: temp.child("layout"))
        let m = try MountGuard(image: image.reference("v1"), mountpoint: temp.child("mnt"), extraArgs: ["--cache", temp.child("cache")])
        let status = try StatusReport.read(temp.child("mnt"))
        try m.unmount()
        #expect(status.json["source"] as? String == "local")
        for layer in image.layers {
            #expect(status.number(layer.descriptor.digest, "present") == UInt64(layer.descriptor.size))
            #expect(status.text(layer.descriptor.digest, "verification") == "verified")
        }
        let gone = try StrataBinary.subcommand("status", [temp.child("mnt")])
        #expect(gone.status == 1 && gone.stderr.contains("no strata mount"), "\(gone.stderr)")
    }

    /// Point 1: inspect, index and snapshot import take a docker:// reference.
    @Test func inspectIndexAndSnapshotImport() throws {
        let s = try Setup()
        let inspect = try StrataBinary.run(["inspect", "--json"] + Self.plain + ["--cache", s.temp.child("cache"), s.reference])
        #expect(inspect.succeeded, "\(inspect.stderr)")
        let manifest = try ImageResolver.resolve(reference: s.image.reference("v1")).manifestDigest
        #expect(inspect.stdoutString.contains(manifest.description), "\(inspect.stdoutString)")
        #expect(inspect.stdoutString.contains(s.bigLayer.descriptor.digest.description))

        let index = try StrataBinary.run(["index"] + Self.plain + ["--cache", s.temp.child("cache"), s.reference])
        #expect(index.succeeded, "\(index.stderr)")
        for layer in s.image.layers {
            #expect(FileIO.exists(s.temp.child("cache/index/sha256/\(layer.descriptor.digest.hex)")))
        }
        let again = try StrataBinary.run(["inspect"] + Self.plain + ["--cache", s.temp.child("cache"), s.reference])
        #expect(again.stdoutString.contains("indexed"), "\(again.stdoutString)")

        let root = s.temp.child("store")
        let imported = try StrataBinary.run(["snapshot", "--root", root, "import"] + Self.plain + [s.reference, "app"])
        #expect(imported.succeeded, "\(imported.stderr)")
        #expect(imported.stdoutString.split(separator: "\n").last == "app", "\(imported.stdoutString)")
        let check = try StrataBinary.run(["snapshot", "--root", root, "check"])
        #expect(check.stdoutString == "ok\n", "\(check.stdoutString) \(check.stderr)")
    }

    /// Point 3 and 7: a blob changed in the registry's storage after the image was indexed is
    /// caught: the read that needs it gets EIO and the log names it; the background fetch then
    /// fails the layer (EIO for all its reads) and drops its blob and index from the cache.
    /// A first mount (no index) of the tampered image fails and leaves nothing cached.
    @Test func tamperedBlobIsCaught() throws {
        let s = try Setup()
        let cache = try s.indexedCache("cache")
        let big = s.bigLayer.descriptor.digest
        // Flip a byte in the middle of the blob as the registry stores it.
        let file = s.registry.blobFile(big)
        var bytes = try FileIO.readAll(file)
        bytes[bytes.count / 2] ^= 0xff
        try FileIO.writeAtomically(file, bytes)

        let off = try s.mount(cache: "cache", at: "mnt", background: false)
        var failures = 0
        for name in ["big1", "big2"] {
            do { _ = try FileIO.readAll(s.temp.child("mnt/data/\(name)")) } catch let error as SystemError {
                #expect(error.code == EIO, "\(error)")
                failures += 1
            }
        }
        #expect(failures >= 1, "a tampered span was served")
        try off.unmount()
        #expect(s.log("mnt").contains("does not match its digest"), "\(s.log("mnt"))")

        let on = try s.mount(cache: "cache", at: "mnt2", background: true)
        let failed = Mounts.waitUntil(seconds: 60) {
            (try? StatusReport.read(s.temp.child("mnt2")).text(big, "verification")) == "failed"
        }
        let failedStatus = try StatusReport.read(s.temp.child("mnt2"))
        #expect(failed, "\(failedStatus.json)")
        #expect(throws: (any Error).self) { try FileIO.readAll(s.temp.child("mnt2/data/small")) }
        try on.unmount()
        #expect(s.log("mnt2").contains("verification failed"), "\(s.log("mnt2"))")
        #expect(!FileIO.exists("\(cache)/index/sha256/\(big.hex)"))
        #expect(Self.fileBlocks("\(cache)/blobs/sha256/\(big.hex)") == 0)

        // No index anywhere: the first mount streams the blob and refuses it.
        let fresh = try StrataBinary.run(["mount"] + Self.plain + ["--cache", s.temp.child("fresh"), s.reference,
                                                                    try s.temp.makeDirectory("mnt3")])
        #expect(fresh.status == 1, "\(fresh.stderr)")
        #expect(fresh.stderr.contains(big.hex) && fresh.stderr.split(separator: "\n").count == 1, "\(fresh.stderr)")
        #expect(!Mounts.isMounted(s.temp.child("mnt3")))
        if Mounts.isMounted(s.temp.child("mnt3")) { try? Mounts.forceUnmount(s.temp.child("mnt3")) }
        #expect(!FileIO.exists(s.temp.child("fresh/index/sha256/\(big.hex)")))
        #expect(Self.fileBlocks(s.temp.child("fresh/blobs/sha256/\(big.hex)")) == 0)
    }

    /// Point 4: with the registry down, a read of bytes not yet fetched gets EIO (after the
    /// client's retries), the mount stays up, and the same read succeeds once it is back.
    @Test func registryDownMidReadGivesEIOAndRecovers() throws {
        let s = try Setup()
        _ = try s.indexedCache("cache")
        let m = try s.mount(cache: "cache", at: "mnt", background: false)
        #expect(try FileIO.readAll(s.temp.child("mnt/data/small")) == Array("small file\n".utf8))
        // big1 starts the layer: reading data/small (after it) fetched none of its first span.
        try s.proxy.inject(.down)
        #expect {
            _ = try FileIO.readAll(s.temp.child("mnt/data/big1"))
        } throws: { error in (error as? SystemError)?.code == EIO }
        #expect(Mounts.isMounted(s.temp.child("mnt")))
        #expect(s.log("mnt").contains("EIO"), "\(s.log("mnt"))")
        try s.proxy.reset()
        #expect(try FileIO.readAll(s.temp.child("mnt/data/big1")) == RegistryImage.big1)
        try m.unmount()

        // The background fetch pauses while the registry is down and completes once it is back.
        try RegistryImage.indexOnlyCache(from: s.temp.child("first-cache"), to: s.temp.child("cache2"))
        let slow = try s.mount(cache: "cache2", at: "mnt2", background: true, extra: ["--background-rate", "1M"])
        let big = s.bigLayer.descriptor.digest
        try s.proxy.inject(.down)
        // Layers complete bottom first: whichever is being fetched shows the registry's error.
        let paused = Mounts.waitUntil(seconds: 120) {
            (try? StatusReport.read(s.temp.child("mnt2")).layers.contains { $0["error"] is String }) == true
        }
        let pausedStatus = try StatusReport.read(s.temp.child("mnt2"))
        #expect(paused, "\(pausedStatus.json)")
        try s.proxy.reset()
        let verified = Mounts.waitUntil(seconds: 120) {
            (try? StatusReport.read(s.temp.child("mnt2")).text(big, "verification")) == "verified"
        }
        let final = try StatusReport.read(s.temp.child("mnt2"))
        #expect(verified, "\(final.json)")
        try slow.unmount()
    }

    /// Point 2: a host that answers ranged GETs with the whole blob (no range support) is read
    /// by streaming: the right bytes still arrive.
    @Test func hostWithoutRangeSupportFallsBackToStreaming() throws {
        let s = try Setup()
        _ = try s.indexedCache("cache")
        try s.proxy.inject(.ignoreRange)
        let m = try s.mount(cache: "cache", at: "mnt", background: false)
        #expect(try FileIO.readAll(s.temp.child("mnt/data/big2")) == RegistryImage.big2)
        #expect(try FileIO.readAll(s.temp.child("mnt/etc/os-release")) == Array("ID=strata-test\n".utf8))
        try m.unmount()
    }

    /// 401 with wrong --creds is a clear one-line error with a non-zero exit; the right ones
    /// work, for a command and for a mount (whose daemon gets them through its environment).
    @Test func wrongCredentialsAreAClearError() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let registry = try TestRegistry(auth: .basic(user: "tester", password: "secret"))
        let image = try RegistryImage.make(layout: temp.child("layout"))
        let reference = try registry.push(layout: image.reference("v1"), reference: "app:v1")

        let wrong = try StrataBinary.run(["inspect"] + Self.plain + ["--creds", "tester:wrong", reference])
        #expect(wrong.status == 1, "\(wrong.stderr)")
        #expect(wrong.stderr.split(separator: "\n").count == 1, "\(wrong.stderr)")
        #expect(wrong.stderr.contains(registry.host), "\(wrong.stderr)")
        let none = try StrataBinary.run(["mount"] + Self.plain + ["--cache", temp.child("cache"), reference,
                                                                   try temp.makeDirectory("mnt0")])
        #expect(none.status == 1, "\(none.stderr)")
        #expect(!Mounts.isMounted(temp.child("mnt0")))

        let right = try StrataBinary.run(["inspect"] + Self.plain + ["--creds", "tester:secret", reference])
        #expect(right.succeeded, "\(right.stderr)")
        let m = try MountGuard(image: reference, mountpoint: temp.child("mnt"),
                               extraArgs: Self.plain + ["--creds", "tester:secret", "--cache", temp.child("cache")])
        #expect(try FileIO.readAll(temp.child("mnt/etc/os-release")) == Array("ID=strata-test\n".utf8))
        try m.unmount()
    }

    /// Point 1 and 7: `strata bundle docker://…` runs under runc (the mount pinned to the
    /// manifest digest the tag resolved to).
    @Test func bundleFromRegistryRunsUnderRunc() throws {
        try Requirement.require(BundleTestSupport.available, "needs runc and busybox-static")
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let registry = try TestRegistry()
        let layout = try BusyboxImage.make(layout: temp.child("layout"), tag: "v1",
                                           config: BusyboxImage.command(["/bin/sh", "-c", "cat /etc/hello; echo ran"]))
        let reference = try registry.push(layout: layout, reference: "busybox:v1")
        let bundle = try StrataBundleFixture(image: reference, directory: temp.child("bundle"),
                                             args: Self.plain + ["--read-only", "--cache", temp.child("cache")])
        let result = try BundleTestSupport.run(.runc, bundle)
        BundleTestSupport.expectOutput(result, "hello from the image\nran\n", .runc)
        let status = try StatusReport.read(bundle.rootfs)
        #expect((status.json["reference"] as? String)?.contains("@sha256:") == true, "\(status.json)")
        try bundle.remove()
    }

    /// Bytes the file takes on disk (a sparse blob: what was fetched); 0 when it is absent.
    static func fileBlocks(_ path: String) -> UInt64 {
        var st = stat()
        guard stat(path, &st) == 0 else { return 0 }
        return UInt64(st.st_blocks) * 512
    }
}
