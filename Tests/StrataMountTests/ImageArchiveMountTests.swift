#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTar
import StrataTestSupport

/// Image archives mounted in place (issue 15, point 1): `skopeo copy` of a layout to
/// oci-archive and docker-archive gives the same tree as `umoci unpack` of the layout; damaged
/// archives are one-line errors and nothing is mounted; every command takes an archive as IMAGE.
@Suite(.enabled(if: canCompareMounts && Skopeo.isAvailable, "needs root, umoci, skopeo and a built strata"), .mountTimeLimit)
struct ImageArchiveMountTests {
    /// Two gzip layers: a file, a hard link, a symlink, a device, then a whiteout and an opaque directory.
    static func makeLayout(_ temp: TempDirectory) throws -> ImageBuilder {
        try makeImage(temp, layers: [
            [Items.dir("etc", mode: 0o755), Items.file("etc/hello", "hello", mode: 0o644, uid: 10),
             Items.hardlink("etc/hello-again", to: "etc/hello"), Items.symlink("link", to: "etc/hello"),
             Items.charDevice("null", major: 1, minor: 3), Items.file("gone", "removed above"),
             Items.dir("opaque"), Items.file("opaque/old", "hidden by the opaque marker"),
             Items.file(Array("big".utf8), Items.pseudoRandom(count: 300_000, seed: 7))],
            [Items.whiteout("gone"), Items.opaque("opaque"), Items.file("opaque/new", "new"),
             Items.file("etc/hello", "hello, replaced", mode: 0o600)],
        ])
    }

    /// skopeo's archive of LAYOUT:test in `kind` ("oci-archive" or "docker-archive"), and the reference for it.
    static func archive(_ builder: ImageBuilder, kind: String, at file: String) throws -> String {
        let tag = kind == "docker-archive" ? "example.com/img:test" : "test"
        try Skopeo.copy("oci:\(builder.layout):test", "\(kind):\(file):\(tag)")
        return "\(kind):\(file):\(tag)"
    }

    @Test(arguments: ["oci-archive", "docker-archive"])
    func sameTreeAsUmociOfTheLayout(kind: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        let reference = try Self.archive(builder, kind: kind, at: temp.child("image.tar"))
        let c = try MountComparison.run(layout: builder.layout, tag: "test", mountedImage: reference,
                                        ignoringAt: MountComparison.rootIgnores)
        #expect(c.differences.isEmpty, Comment(rawValue: c.report))
        #expect(c.mounted.entry("opaque/new") != nil && c.mounted.entry("opaque/old") == nil && c.mounted.entry("gone") == nil)
        // Nothing was extracted: the archive is the only copy of the blobs besides the layout.
        #expect(!FileIO.isDirectory(temp.child("image.tar")))
    }

    /// A plain path to an archive is recognised by its content; a docker-archive's REPO:TAG may
    /// be given in Docker's short form.
    @Test func plainPathsAndShortNames() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        _ = try Self.archive(builder, kind: "oci-archive", at: temp.child("oci.tar"))
        try Skopeo.copy("oci:\(builder.layout):test", "docker-archive:\(temp.child("docker.tar")):busybox:latest")
        for image in [temp.child("oci.tar"), temp.child("oci.tar") + ":test", temp.child("docker.tar"),
                      "docker-archive:\(temp.child("docker.tar")):docker.io/library/busybox:latest"] {
            let guardian = try MountGuard(image: image, mountpoint: temp.child("mnt"), extraArgs: ["--cache", temp.child("cache")])
            #expect(try FileIO.readAll(temp.child("mnt/etc/hello")) == bytes("hello, replaced"), "\(image)")
            try guardian.unmount()
        }
    }

    /// The index is keyed by the blob digest: an oci-archive's layers share it with the layout's.
    @Test func ociArchiveSharesTheLayoutsIndexes() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        let reference = try Self.archive(builder, kind: "oci-archive", at: temp.child("image.tar"))
        let cache = ["--cache", temp.child("cache")]
        let first = try StrataBinary.run(["index"] + cache + ["\(builder.layout):test"])
        #expect(first.succeeded, "\(first.stderr)")
        let second = try StrataBinary.run(["index"] + cache + [reference])
        #expect(second.succeeded, "\(second.stderr)")
        let lines = second.stdoutString.split(separator: "\n").filter { $0.hasPrefix("sha256:") }
        #expect(lines.count == 2 && lines.allSatisfy { $0.hasSuffix("cached") }, "\(second.stdoutString)")
    }

    @Test(arguments: ["oci-archive", "docker-archive"])
    func inspectIndexAndSnapshotImportTakeArchives(kind: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        let reference = try Self.archive(builder, kind: kind, at: temp.child("image.tar"))
        let inspect = try StrataBinary.run(["inspect", "--json", reference])
        #expect(inspect.succeeded && inspect.stdoutString.contains("\"layers\""), "\(inspect.stderr)")
        let index = try StrataBinary.run(["index", "--cache", temp.child("cache"), reference])
        #expect(index.succeeded, "\(index.stderr)")
        let root = temp.child("store")
        let imported = try StrataBinary.run(["snapshot", "--root", root, "import", reference, "app"])
        #expect(imported.succeeded, "\(imported.stderr)")
        let mounts = try StrataBinary.run(["snapshot", "--root", root, "view", "v", "app"])
        #expect(mounts.succeeded, "\(mounts.stderr)")
        let stat = try StrataBinary.run(["snapshot", "--root", root, "stat", "app"])
        #expect(stat.succeeded && stat.stdoutString.contains("committed"), "\(stat.stdoutString)\(stat.stderr)")
    }

    /// `strata bundle` takes an archive too: the container runs from the archive, in place.
    @Test(arguments: ["oci-archive", "docker-archive"], BundleTestSupport.runtimes)
    func bundleRunsFromAnArchive(kind: String, runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        try Requirement.require(BusyboxImage.isAvailable, "needs busybox-static, umoci and setcap")
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let layout = temp.child("layout")
        try BusyboxImage.make(layout: layout, tag: "test", config: BusyboxImage.command(["/bin/cat", "/etc/hello"]))
        let tag = kind == "docker-archive" ? "busybox:test" : "test"
        try Skopeo.copy("oci:\(layout):test", "\(kind):\(temp.child("image.tar")):\(tag)")
        let bundle = try StrataBundleFixture(image: "\(kind):\(temp.child("image.tar")):\(tag)", directory: temp.child("bundle"),
                                             args: ["--read-only"])
        BundleTestSupport.expectOutput(try BundleTestSupport.run(runtime, bundle), "hello from the image\n", runtime)
        try bundle.remove()
        // commit adds to a layout directory only: an archive base is refused with the way out.
        let upper = try temp.makeDirectory("upper")
        let commit = try StrataBinary.run(["commit", upper, "\(kind):\(temp.child("image.tar")):\(tag)", "new"])
        #expect(!commit.succeeded && commit.stderr.contains("skopeo copy"), "\(commit.stderr)")
    }

    // MARK: - Damaged archives

    /// The mount fails with one line on stderr containing `expected`, and nothing is mounted.
    static func expectRefused(_ image: String, _ temp: TempDirectory, containing expected: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let mountpoint = try temp.makeDirectory("mnt-\(UInt32.random(in: 0...UInt32.max))")
        let result = try StrataBinary.run(["mount", "--cache", temp.child("fresh-cache-\(UInt32.random(in: 0...UInt32.max))"), image, mountpoint])
        defer { if Mounts.isMounted(mountpoint) { try? Mounts.forceUnmount(mountpoint) } }
        #expect(!result.succeeded, "mounted \(image)", sourceLocation: sourceLocation)
        #expect(!Mounts.isMounted(mountpoint), sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "\(result.stderr)", sourceLocation: sourceLocation)
        #expect(expected.contains { result.stderr.contains($0) }, "\(result.stderr)", sourceLocation: sourceLocation)
    }

    @Test(arguments: ["oci-archive", "docker-archive"])
    func truncatedArchiveIsRefused(kind: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        let reference = try Self.archive(builder, kind: kind, at: temp.child("image.tar"))
        var tar = try FileIO.readAll(temp.child("image.tar"))
        let layer = try #require(try ArchiveMembers.largest(tar))
        tar.removeSubrange((layer.dataOffset + layer.size / 2)...)
        try FileIO.writeAtomically(temp.child("image.tar"), tar)
        try Self.expectRefused(reference, temp, containing: ["truncated"])
    }

    /// A member header that claims more, or fewer, bytes than the member holds.
    @Test(arguments: ["oci-archive", "docker-archive"], [Int64(512), Int64(-1024)])
    func memberLyingAboutItsSizeIsRefused(kind: String, delta: Int64) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        let reference = try Self.archive(builder, kind: kind, at: temp.child("image.tar"))
        var tar = try FileIO.readAll(temp.child("image.tar"))
        let layer = try #require(try ArchiveMembers.largest(tar))
        ArchiveMembers.setSize(&tar, header: layer.headerOffset, to: UInt64(Int64(layer.size) + delta))
        try FileIO.writeAtomically(temp.child("image.tar"), tar)
        try Self.expectRefused(reference, temp, containing: ["truncated", "than its header says"])
    }

    @Test(arguments: ["oci-archive", "docker-archive"])
    func memberWithWrongDigestIsRefused(kind: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeLayout(temp)
        let reference = try Self.archive(builder, kind: kind, at: temp.child("image.tar"))
        var tar = try FileIO.readAll(temp.child("image.tar"))
        let layer = try #require(try ArchiveMembers.largest(tar))
        // Inside the pseudo-random file's data (past its header), so the tar structure stays intact.
        tar[layer.dataOffset + layer.size / 2] ^= 0x55
        try FileIO.writeAtomically(temp.child("image.tar"), tar)
        try Self.expectRefused(reference, temp, containing: ["layer sha256:"])
    }

    @Test func otherFilesSayWhatTheyAreAndHowToConvert() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        try FileIO.writeAtomically(temp.child("notes.txt"), bytes("not an image\n"))
        try Self.expectRefused(temp.child("notes.txt"), temp, containing: ["not a tar archive"])
        let plainTar = try TarWriter.archive([Items.file("hello", "hi")], format: .pax)
        try FileIO.writeAtomically(temp.child("plain.tar"), plainTar)
        try Self.expectRefused(temp.child("plain.tar"), temp, containing: ["without oci-layout"])
        let dir = try temp.makeDirectory("rootfs")
        try Self.expectRefused(dir, temp, containing: ["not an OCI image layout"])
        for file in ["notes.txt", "plain.tar", "rootfs"] {
            let r = try StrataBinary.run(["inspect", temp.child(file)])
            #expect(r.stderr.contains("skopeo copy"), "\(r.stderr)")
        }
    }
}

/// Reads the member headers of a (ustar/PAX) tar in memory, for damaging archives on purpose.
enum ArchiveMembers {
    struct Member { var name: String; var headerOffset: Int; var dataOffset: Int; var size: Int }

    static func list(_ tar: [UInt8]) throws -> [Member] {
        var out: [Member] = []
        var offset = 0
        while offset + 512 <= tar.count {
            let header = Array(tar[offset..<(offset + 512)])
            if header.allSatisfy({ $0 == 0 }) { break }
            let name = String(decoding: header[0..<100].prefix { $0 != 0 }, as: UTF8.self)
            let sizeText = String(decoding: header[124..<136].prefix { $0 != 0 && $0 != 0x20 }, as: UTF8.self)
            guard let size = Int(sizeText, radix: 8) else { throw HarnessError("bad size field at \(offset)") }
            if header[156] == 0x30 || header[156] == 0 { out.append(Member(name: name, headerOffset: offset, dataOffset: offset + 512, size: size)) }
            offset += 512 + (size + 511) / 512 * 512
        }
        return out
    }

    /// The largest regular member: the big layer.
    static func largest(_ tar: [UInt8]) throws -> Member? {
        try list(tar).max { $0.size < $1.size }
    }

    /// Rewrites a header's size field and its checksum.
    static func setSize(_ tar: inout [UInt8], header: Int, to size: UInt64) {
        let field = Array(String(size, radix: 8).utf8)
        let padded = [UInt8](repeating: 0x30, count: 11 - field.count) + field + [0]
        tar.replaceSubrange((header + 124)..<(header + 136), with: padded)
        tar.replaceSubrange((header + 148)..<(header + 156), with: [UInt8](repeating: 0x20, count: 8))
        let sum = tar[header..<(header + 512)].reduce(0) { $0 + Int($1) }
        let text = Array(String(sum, radix: 8).utf8)
        tar.replaceSubrange((header + 148)..<(header + 156), with: [UInt8](repeating: 0x30, count: 6 - text.count) + text + [0, 0x20])
    }
}
