#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataOCI
import StrataSystem
import StrataTar
import StrataTestSupport

/// Broken and hostile images (issue 2, point 3 of the brief): `strata mount` must exit
/// non-zero with ONE line on stderr naming what is at fault, and leave nothing mounted.
@Suite(.enabled(if: getuid() == 0 && StrataBinary.isBuilt, "needs root and a built strata"), .mountTimeLimit)
struct BadInputMountTests {
    /// A layer with enough data that truncation and corruption land inside deflate data.
    static let tar: [UInt8] = try! TarWriter.archive([
        Items.dir("d"), Items.file(bytes("d/data"), Items.pseudoRandom(count: 300_000, seed: 9)), Items.file("d/tail", "t"),
    ])

    /// Runs `strata ARGS` (for mount: `--cache` and a fresh mount point under `temp` are added)
    /// and checks the failure contract. Returns stderr for further checks.
    @discardableResult
    func expectOneLineFailure(_ command: String, _ image: String, in temp: TempDirectory, mountpoint: String? = nil,
                              mentions: [String], sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
        var args = [command, "--cache", temp.child("cache")]
        if command == "mount" {
            let mnt = try mountpoint ?? temp.makeDirectory("mnt")
            args += [image, mnt]
        } else {
            args.append(image)
        }
        let result = try StrataBinary.run(args, timeout: 60)
        let stderr = result.stderr
        let lines = stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(result.status != 0 && !result.timedOut, "strata \(args.joined(separator: " ")) exited \(result.status)",
                sourceLocation: sourceLocation)
        #expect(lines.count == 1, "stderr is not one line:\n\(stderr)", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(stderr.contains(word), "stderr does not name \(word):\n\(stderr)", sourceLocation: sourceLocation)
        }
        let left = MountTable.mounts(under: temp.path)
        #expect(left.isEmpty, "left mounted: \(left)", sourceLocation: sourceLocation)
        for m in left { try? Mounts.forceUnmount(m) }
        return stderr
    }

    /// A layout whose one layer is `blob` as given (descriptor possibly lying), tagged "bad".
    func layout(_ temp: TempDirectory, blob: [UInt8], mediaType: String = MediaType.ociLayerGzip,
                digest: Digest? = nil, size: Int64? = nil, store: Bool = true, diffID: Digest? = nil) throws -> ImageBuilder {
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.file("lower", "a good lower layer")])
        try b.addRawLayer(blob: blob, mediaType: mediaType, digest: digest, size: size,
                          diffID: diffID ?? Digest.sha256(of: Self.tar), store: store)
        try b.write(tag: "bad")
        return b
    }

    @Test func truncatedGzip() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let gz = try ImageBuilder.compress(Self.tar, .gzip)
        let truncated = Array(gz.prefix(gz.count * 6 / 10))
        let b = try layout(temp, blob: truncated)
        let digest = Digest.sha256(of: truncated).hex
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [digest])
        try expectOneLineFailure("index", b.reference("bad"), in: temp, mentions: [digest])
    }

    /// A byte flipped in a stored blob: its content no longer has the digest it is filed under.
    @Test func corruptedBlob() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        let layer = try b.addLayer(tar: Self.tar)
        try b.write(tag: "bad")
        let path = b.blobPath(layer.descriptor.digest)
        var bytes = try FileIO.readAll(path)
        bytes[bytes.count / 2] ^= 0x40
        try FileIO.writeAtomically(path, bytes)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [layer.descriptor.digest.hex])
        try expectOneLineFailure("index", b.reference("bad"), in: temp, mentions: [layer.descriptor.digest.hex])
    }

    /// The classic mix-up: the descriptor names the diff_id (digest of the uncompressed tar),
    /// and a file of that name holds the compressed blob.
    @Test func wrongDigestInDescriptor() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let gz = try ImageBuilder.compress(Self.tar, .gzip)
        let wrong = Digest.sha256(of: Self.tar)
        let b = try layout(temp, blob: gz, digest: wrong)
        try FileIO.writeAtomically(b.blobPath(wrong), gz)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [wrong.hex])
    }

    @Test(arguments: [1, -1])
    func wrongSizeInDescriptor(delta: Int64) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let gz = try ImageBuilder.compress(Self.tar, .gzip)
        let b = try layout(temp, blob: gz, size: Int64(gz.count) + delta)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [Digest.sha256(of: gz).hex])
    }

    @Test func garbageTarHeader() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        var garbage = RawTar.file(name: bytes("fine"), data: bytes("ok"))
        garbage += RawTar.header(name: bytes("broken"), size: 5, badChecksum: true) + RawTar.padded(bytes("xxxxx")) + RawTar.end
        let b = try layout(temp, blob: garbage, mediaType: MediaType.ociLayerTar)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [Digest.sha256(of: garbage).hex])
    }

    /// Random bytes where a tar should be (valid gzip around them).
    @Test func notATarAtAll() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let gz = try ImageBuilder.compress(Items.pseudoRandom(count: 5000, seed: 11), .gzip)
        let b = try layout(temp, blob: gz)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [Digest.sha256(of: gz).hex])
    }

    @Test(arguments: ["../../etc/x", "a/../../x"])
    func pathEscape(name: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tar = RawTar.file(name: bytes("ok"), data: bytes("ok")) + RawTar.file(name: bytes(name), data: bytes("pwned")) + RawTar.end
        let b = try layout(temp, blob: tar, mediaType: MediaType.ociLayerTar)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [name])
    }

    @Test func hardlinkTargetEscape() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tar = RawTar.header(name: bytes("link"), type: UInt8(ascii: "1"), linkname: bytes("../../etc/shadow")) + RawTar.end
        let b = try layout(temp, blob: tar, mediaType: MediaType.ociLayerTar)
        let digest = Digest.sha256(of: tar).hex
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: ["'link'", digest])
    }

    /// A hardlink over a directory that holds its target: an extractor removes the directory
    /// first, so the link has nothing to point at (umoci fails on it too).
    @Test func hardlinkReplacingTheDirectoryOfItsTarget() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tar = RawTar.header(name: bytes("d/"), type: UInt8(ascii: "5"), mode: 0o755) + RawTar.file(name: bytes("d/f"), data: bytes("f"))
            + RawTar.header(name: bytes("d"), type: UInt8(ascii: "1"), linkname: bytes("d/f")) + RawTar.end
        let b = try layout(temp, blob: tar, mediaType: MediaType.ociLayerTar, diffID: Digest.sha256(of: tar))
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: ["'d'", "d/f", Digest.sha256(of: tar).hex])
    }

    @Test(arguments: [".wh.", "dir/.wh."])
    func whiteoutWithoutName(name: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let tar = RawTar.file(name: bytes(name), data: []) + RawTar.end
        let b = try layout(temp, blob: tar, mediaType: MediaType.ociLayerTar)
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [name])
    }

    @Test func missingBlob() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let gz = try ImageBuilder.compress(Self.tar, .gzip)
        let b = try layout(temp, blob: gz, store: false)
        let digest = Digest.sha256(of: gz).hex
        try expectOneLineFailure("mount", b.reference("bad"), in: temp, mentions: [digest])
        try expectOneLineFailure("index", b.reference("bad"), in: temp, mentions: [digest])
    }

    @Test func indexJSONIsNotJSON() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.file("f", "f")])
        try b.write(tag: "bad")
        try FileIO.writeAtomically(temp.child("layout/index.json"), bytes("{\"schemaVersion\": 2, \"manifests\": [\n  oops\n"))
        for command in ["mount", "index", "inspect"] {
            try expectOneLineFailure(command, b.reference("bad"), in: temp, mentions: ["index.json"])
        }
    }

    /// The manifest the tag points to is gone: inspect (which reads no layer) fails too.
    @Test func missingManifest() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.file("f", "f")])
        let manifest = try b.write(tag: "bad")
        #expect(unlink(b.blobPath(manifest.digest)) == 0)
        for command in ["mount", "index", "inspect"] {
            try expectOneLineFailure(command, b.reference("bad"), in: temp, mentions: [manifest.digest.hex])
        }
    }

    @Test func unknownTag() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.file("f", "f")])
        try b.write(tag: "good")
        for command in ["mount", "index", "inspect"] {
            try expectOneLineFailure(command, b.reference("no-such-tag"), in: temp, mentions: ["no-such-tag"])
        }
    }

    @Test func nonexistentMountpoint() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.file("f", "f")])
        try b.write(tag: "good")
        let missing = temp.child("no/such/dir")
        try expectOneLineFailure("mount", b.reference("good"), in: temp, mountpoint: missing, mentions: [missing])
        #expect(!FileIO.exists(missing))
    }

    /// Sanity check of the fixtures above: the good lower layer alone mounts.
    @Test func goodLayoutMounts() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try ImageBuilder(layout: temp.child("layout"))
        try b.addLayer(entries: [Items.file("f", "f")])
        try b.write(tag: "good")
        let snapshot = try MountComparison.captureMount(layout: b.layout, tag: "good", work: temp)
        #expect(snapshot.entry("f")?.size == 1)
        #expect(MountTable.mounts(under: temp.path).isEmpty)
    }
}
