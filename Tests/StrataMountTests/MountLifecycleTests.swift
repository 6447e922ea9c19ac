import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataOCI
import StrataSystem
import StrataTar
import StrataTestSupport

/// A one-layer gzip image written with the library pieces directly.
private func makeImage(at layout: String, files: [(String, [UInt8])]) throws -> (tag: String, layerDigest: Digest) {
    var items: [(TarEntry, [UInt8])] = []
    for (path, data) in files {
        items.append((TarEntry(path: Array(path.utf8), type: .regular, mode: 0o644, size: UInt64(data.count),
                               mtimeSeconds: 1_600_000_000), data))
    }
    let tar = try TarWriter.archive(items)
    let writer = try ImageLayoutWriter(path: layout)
    let layer = try writer.writeBlob(Gzip.compress(tar), mediaType: MediaType.ociLayerGzip)
    let config = ImageConfig(architecture: Platform.host.architecture, os: "linux",
                             rootfs: .init(diffIDs: [Digest.sha256(of: tar)]))
    let configDescriptor = try writer.writeJSON(config, mediaType: MediaType.ociConfig)
    let manifest = Manifest(config: configDescriptor, layers: [layer])
    let manifestDescriptor = try writer.writeJSON(manifest, mediaType: MediaType.ociManifest)
    try writer.tag(manifestDescriptor, as: "v1")
    return ("\(layout):v1", layer.digest)
}

private func daemonPID(for mountpoint: String) -> pid_t? {
    let r = try? Command.run("pgrep", ["-f", "strata mount --foreground.* \(mountpoint) "])
    return r.flatMap { Int32($0.stdoutString.split(separator: "\n").first ?? "") }
}

private func waitUntil(_ condition: () -> Bool) -> Bool {
    for _ in 0..<500 {
        if condition() { return true }
        usleep(20_000)
    }
    return condition()
}

@Suite(.serialized, .mountTimeLimit) struct MountLifecycleTests {
    @Test func sigtermUnmountsAndTheDaemonExits() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let (image, _) = try makeImage(at: tmp.child("layout"), files: [("hello", Array("hi\n".utf8))])
        let mnt = try tmp.makeDirectory("mnt")
        let guardian = try MountGuard(image: image, mountpoint: mnt, extraArgs: ["--cache", tmp.child("cache")])
        defer { try? guardian.unmount() }
        #expect(try FileIO.readAll(mnt + "/hello") == Array("hi\n".utf8))
        let pid = try #require(daemonPID(for: mnt))
        kill(pid, SIGTERM)
        #expect(waitUntil { !MountGuard.isMounted(mnt) })
        #expect(waitUntil { kill(pid, 0) != 0 })
    }

    @Test func killedDaemonLeavesAStaleMountThatUnmountClears() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let (image, _) = try makeImage(at: tmp.child("layout"), files: [("a", [1, 2, 3])])
        let mnt = try tmp.makeDirectory("mnt")
        let guardian = try MountGuard(image: image, mountpoint: mnt, extraArgs: ["--cache", tmp.child("cache")])
        defer { try? guardian.unmount() }
        let pid = try #require(daemonPID(for: mnt))
        kill(-pid, SIGKILL)   // the supervisor's group: it and its server
        #expect(waitUntil { kill(pid, 0) != 0 })
        // Attributes may still come from the kernel's cache; opening the directory must ask the daemon.
        let fd = open(mnt, O_RDONLY | O_DIRECTORY)
        let code = errno
        if fd >= 0 { close(fd) }
        #expect(fd < 0 && code == ENOTCONN)
        #expect(FileIO.exists(RestartSupport.runDirectory(mnt)), "the killed supervisor left its run directory")
        let r = try StrataBinary.run(["unmount", mnt])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!MountGuard.isMounted(mnt))
        // Its run directory (sockets, server.pid) goes with the stale mount.
        #expect(!FileIO.exists(RestartSupport.runDirectory(mnt)))
        // The mountpoint is usable again.
        let again = try MountGuard(image: image, mountpoint: mnt, extraArgs: ["--cache", tmp.child("cache")])
        defer { try? again.unmount() }
        #expect(try FileIO.readAll(mnt + "/a") == [1, 2, 3])
    }

    @Test func secondMountOnTheSameMountpointIsRefused() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let (image, _) = try makeImage(at: tmp.child("layout"), files: [("a", [1])])
        let mnt = try tmp.makeDirectory("mnt")
        let guardian = try MountGuard(image: image, mountpoint: mnt, extraArgs: ["--cache", tmp.child("cache")])
        defer { try? guardian.unmount() }
        let r = try StrataBinary.run(["mount", "--cache", tmp.child("cache"), image, mnt])
        #expect(r.status != 0)
        #expect(r.stderr.contains(mnt) && r.stderr.contains("already mounted"))
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    /// A warm mount maps the cached index and touches no layer data: with the blob's bytes
    /// replaced after indexing, the mount still comes up (and a read then fails with EIO, not
    /// with wrong data).
    @Test func warmMountReadsNoLayerData() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let payload = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let (image, digest) = try makeImage(at: tmp.child("layout"), files: [("f", payload)])
        let cache = tmp.child("cache")
        #expect(try StrataBinary.run(["index", "--cache", cache, image]).status == 0)
        let blob = tmp.child("layout") + "/blobs/sha256/" + digest.hex
        let size = try FileIO.readAll(blob).count
        try FileIO.writeAtomically(blob, [UInt8](repeating: 0x55, count: size))
        let mnt = try tmp.makeDirectory("mnt")
        let guardian = try MountGuard(image: image, mountpoint: mnt, extraArgs: ["--cache", cache])
        defer { try? guardian.unmount() }
        var st = stat()
        #expect(stat(mnt + "/f", &st) == 0 && st.st_size == 200_000)
        #expect(readError(mnt + "/f") == EIO)
    }

    @Test func concurrentIndexingOfOneLayerBothSucceed() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: ($0 &* 7919) >> 3) }
        let (image, _) = try makeImage(at: tmp.child("layout"), files: [("big", big), ("small", [1])])
        let cache = tmp.child("cache")
        let strata = try StrataBinary.path()
        // The first indexer holds at a gate (STRATA_TEST_INDEX_GATE) with its index built but not
        // yet written; the second indexes the same layer from start to end meanwhile; then the
        // gate opens and the first writes over it. Both must exit 0. The order is forced: the
        // script fails (never hangs) if the first does not reach the gate within 120 s.
        let gate = tmp.child("index-gate")
        defer { close(open(gate, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)) }   // never leave it held
        let script = """
            STRATA_TEST_INDEX_GATE='\(gate)' \(strata) index --cache '\(cache)' '\(image)' >/dev/null & a=$!
            n=0; while [ ! -e '\(gate).reached' ]; do n=$((n+1)); [ $n -le 1200 ] || { touch '\(gate)'; wait $a; exit 90; }; sleep 0.1; done
            \(strata) index --cache '\(cache)' '\(image)' >/dev/null; b=$?
            touch '\(gate)'; wait $a; a=$?
            echo "first $a second $b"; [ $a -eq 0 ] && [ $b -eq 0 ]
            """
        let r = try Command.run("/bin/sh", ["-c", script], timeout: 300)
        #expect(r.status == 0, "\(r.stdoutString) \(r.stderr)")
        #expect(r.stdoutString == "first 0 second 0\n")
        let mnt = try tmp.makeDirectory("mnt")
        let guardian = try MountGuard(image: image, mountpoint: mnt, extraArgs: ["--cache", cache])
        defer { try? guardian.unmount() }
        #expect(try FileIO.readAll(mnt + "/big") == big)
    }

    @Test func inspectReportsLayersAndIndexState() throws {
        let tmp = try TempDirectory()
        defer { withExtendedLifetime(tmp) {} }
        let (image, digest) = try makeImage(at: tmp.child("layout"), files: [("a", [1])])
        let cache = tmp.child("cache")
        let before = try StrataBinary.run(["inspect", "--cache", cache, "--json", image])
        #expect(before.status == 0)
        #expect(before.stdoutString.contains(digest.description))
        #expect(before.stdoutString.contains("\"indexed\" : false"))
        #expect(try StrataBinary.run(["index", "--cache", cache, image]).status == 0)
        let after = try StrataBinary.run(["inspect", "--cache", cache, image])
        #expect(after.stdoutString.contains("indexed (1 entries)"))
    }

    @Test func everyCommandHasHelp() throws {
        for command in ["mount", "unmount", "index", "inspect"] {
            let r = try StrataBinary.run([command, "--help"])
            #expect(r.status == 0)
            #expect(r.stdoutString.contains("usage: strata \(command)"))
        }
        let bad = try StrataBinary.run(["mount", "--bogus", "x", "y"])
        #expect(bad.status != 0 && bad.stderr.contains("--bogus"))
    }
}
