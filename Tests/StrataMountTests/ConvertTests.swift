#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataHash
import StrataOCI
import StrataSystem
import StrataTar
import StrataTestSupport

/// `strata convert` and `strata commit --compression` with the seekable formats (issue 12,
/// point 2), checked with the tools users have: umoci unpacks the eStargz image to the same
/// tree as the source (plus the TOC entry), `zstd -d | tar t` lists every entry of a
/// zstd:chunked layer, skopeo copies the images through a registry, and `strata mount` of a
/// converted image shows what umoci shows of the source.
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct ConvertTests {
    static let estargzAnnotations = ["containerd.io/snapshot/stargz/toc.digest", "io.containers.estargz.uncompressed-size"]
    static let chunkedAnnotations = ["io.github.containers.zstd-chunked.manifest-checksum",
                                     "io.github.containers.zstd-chunked.manifest-position",
                                     "io.containers.zstd-chunked.manifest-checksum",
                                     "io.containers.zstd-chunked.manifest-position"]

    /// VFS_CAP_REVISION_2 with CAP_NET_BIND_SERVICE permitted and effective (the kernel checks the form).
    static let capability: [UInt8] = [0x01, 0, 0, 0x02, 0x00, 0x04, 0, 0] + [UInt8](repeating: 0, count: 12)

    /// Two layers with what the writers must carry: an empty file, a file of three 4 MiB chunks,
    /// a hardlink, a symlink, devices, a fifo, xattrs, a PAX long name, nanosecond mtimes; then
    /// a whiteout and an opaque directory.
    static func makeSource(_ temp: TempDirectory) throws -> ImageBuilder {
        let longDir = "deep/" + String(repeating: "d", count: 120)
        return try makeImage(temp, layers: [
            [Items.dir("etc", mode: 0o755), Items.file("etc/hello", "hello", mode: 0o640, uid: 10, gid: 20, nanoseconds: 123_456_789),
             Items.file("etc/empty"), Items.hardlink("etc/hello-again", to: "etc/hello"),
             Items.symlink("link", to: "etc/hello"), Items.charDevice("null", major: 1, minor: 3),
             Items.blockDevice("sda", major: 8, minor: 0), Items.fifo("pipe"),
             Items.file("caps", "x", xattrs: ["security.capability": capability, "user.note": bytes("n")]),
             Items.dir("deep"), Items.dir(longDir), Items.file(longDir + "/" + String(repeating: "f", count: 130), "long"),
             Items.file(Array("big".utf8), Items.pseudoRandom(count: 9 << 20, seed: 3)),
             Items.file("gone", "removed above"), Items.dir("opaque"), Items.file("opaque/old", "hidden")],
            [Items.whiteout("gone"), Items.opaque("opaque"), Items.file("opaque/new", "new"),
             Items.file("etc/hello", "hello, replaced", mode: 0o600)],
        ])
    }

    static func convert(_ builder: ImageBuilder, to compression: String, tag: String) throws -> ResolvedImage {
        let r = try StrataBinary.run(["convert", "--compression", compression, builder.reference("test"), tag], timeout: 300)
        #expect(r.status == 0, "\(r.stderr)")
        let digest = r.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)
        let image = try ImageResolver.resolve(reference: builder.reference(tag))
        #expect(image.manifestDigest.description == digest)
        return image
    }

    /// The sha256 of a blob's decompressed stream (`gzip -dc` / `zstd -dc`).
    static func uncompressedDigest(_ path: String, tool: String) throws -> String {
        let r = try Command.check("/bin/sh", ["-c", "\(tool) -dc < '\(path)' | sha256sum"])
        return "sha256:" + (r.stdoutString.split(separator: " ").first.map(String.init) ?? "")
    }

    @Test func estargzUnpacksWithUmociLikeTheSource() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeSource(temp)
        let image = try Self.convert(builder, to: "estargz", tag: "esgz")
        let source = try ImageResolver.resolve(reference: builder.reference("test"))
        #expect(image.layers.count == 2)
        for (i, layer) in image.layers.enumerated() {
            #expect(layer.descriptor.mediaType == MediaType.ociLayerGzip)
            let annotations = layer.descriptor.annotations ?? [:]
            #expect(Self.estargzAnnotations.allSatisfy { annotations[$0] != nil }, "\(annotations)")
            // The config's diff_ids are the uncompressed streams, the TOC entry included.
            let blob = builder.blobPath(layer.descriptor.digest)
            #expect(try Self.uncompressedDigest(blob, tool: "gzip") == layer.diffID.description)
            #expect(layer.diffID != source.layers[i].diffID)
            let listing = try Command.check("/bin/sh", ["-c", "gzip -dc < '\(blob)' | tar -t | tail -n 1"]).stdoutString
            #expect(listing == "stargz.index.json\n")
        }
        #expect(image.config.rootfs.diffIDs == image.layers.map(\.diffID))
        #expect(image.config.config == source.config.config && image.config.history == source.config.history)

        let esgz = try TreeSnapshot.capture(root: try Umoci.unpack(layout: builder.layout, tag: "esgz", into: temp.child("b1")))
        let plain = try TreeSnapshot.capture(root: try Umoci.unpack(layout: builder.layout, tag: "test", into: temp.child("b0")))
        #expect(esgz.entry("stargz.index.json") != nil)
        // The only difference: the TOC entry, a file the source has not.
        let diffs = plain.differences(from: esgz, ignoring: [], ignoringAt: [".": [.mtime]])
            .filter { !$0.contains("stargz.index.json") }
        #expect(diffs.isEmpty, Comment(rawValue: diffs.joined(separator: "\n")))
        #expect(esgz.entry("big")?.size == 9 << 20 && esgz.entry("opaque/old") == nil && esgz.entry("gone") == nil)

        // Converting again reuses every layer: same manifest.
        let again = try Self.convert(builder, to: "estargz", tag: "esgz2")
        #expect(again.manifestDigest == image.manifestDigest)
    }

    @Test func zstdChunkedListsEveryEntryWithZstdAndTar() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeSource(temp)
        let image = try Self.convert(builder, to: "zstd:chunked", tag: "zc")
        let source = try ImageResolver.resolve(reference: builder.reference("test"))
        for (i, layer) in image.layers.enumerated() {
            #expect(layer.descriptor.mediaType == MediaType.ociLayerZstd)
            let annotations = layer.descriptor.annotations ?? [:]
            #expect(Self.chunkedAnnotations.allSatisfy { annotations[$0] != nil }, "\(annotations)")
            let blob = builder.blobPath(layer.descriptor.digest)
            #expect(try Self.uncompressedDigest(blob, tool: "zstd") == layer.diffID.description)
            let sourceBlob = builder.blobPath(source.layers[i].descriptor.digest)
            let converted = try Command.check("/bin/sh", ["-c", "zstd -dc < '\(blob)' | tar -tv"]).stdoutString
            let original = try Command.check("/bin/sh", ["-c", "gzip -dc < '\(sourceBlob)' | tar -tv"]).stdoutString
            #expect(converted == original)
        }
    }

    @Test(arguments: ["estargz", "zstd:chunked"])
    func strataMountOfTheConvertedImageIsUmociOfTheSource(compression: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeSource(temp)
        _ = try Self.convert(builder, to: compression, tag: "converted")
        // The eStargz TOC entry is a file of its layers, so umoci of the converted image is the
        // reference there (the test above shows it equals umoci of the source plus that file);
        // umoci cannot read zstd, so the source is the reference for zstd:chunked.
        let c = try MountComparison.run(layout: builder.layout, tag: "converted",
                                        referenceTag: compression == "estargz" ? "converted" : "test")
        #expect(c.differences.isEmpty, Comment(rawValue: c.report))
        #expect(c.mounted.entry("opaque/new") != nil && c.mounted.entry("gone") == nil)
        #expect(c.mounted.entry("big")?.contentSHA256 == sha(Items.pseudoRandom(count: 9 << 20, seed: 3)))
    }

    @Test(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
    func skopeoCopiesTheConvertedImagesThroughARegistry() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeSource(temp)
        let registry = try TestRegistry()
        defer { registry.stop() }
        for (compression, tag) in [("estargz", "esgz"), ("zstd:chunked", "zc")] {
            let image = try Self.convert(builder, to: compression, tag: tag)
            let remote = try registry.push(layout: builder.reference(tag), reference: "conv:\(tag)")
            let inspect = try Command.check(Skopeo.path, ["inspect", "--raw", "--tls-verify=false", remote]).stdoutString
            // The registry keeps the manifest as written: annotations and all.
            let manifest = try JSONCoding.decode(Manifest.self, from: Array(inspect.utf8), what: "manifest")
            #expect(manifest.layers == image.manifest.layers)
            // skopeo pulls it back (checking every blob's digest) and umoci unpacks the eStargz one.
            try Command.check(Skopeo.path, ["--insecure-policy", "copy", "--quiet", "--src-tls-verify=false",
                                            remote, "oci:\(temp.child("pulled")):\(tag)"], timeout: 300)
            if compression == "estargz" {
                let rootfs = try Umoci.unpack(layout: temp.child("pulled"), tag: tag, into: temp.child("pulled-bundle"))
                #expect(try FileIO.readAll(rootfs + "/etc/hello") == bytes("hello, replaced"))
            }
        }
    }

    @Test func plainConversionsKeepTheDiffIDs() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeSource(temp)
        let source = try ImageResolver.resolve(reference: builder.reference("test"))
        let zstd = try Self.convert(builder, to: "zstd", tag: "z")
        #expect(zstd.layers.map(\.diffID) == source.layers.map(\.diffID))
        #expect(zstd.configDescriptor.digest == source.configDescriptor.digest)
        #expect(zstd.layers.allSatisfy { $0.descriptor.mediaType == MediaType.ociLayerZstd && $0.descriptor.annotations == nil })
        // Back to gzip from eStargz: the TOC annotations go, the bytes (TOC entry included) stay.
        let esgz = try Self.convert(builder, to: "estargz", tag: "e")
        let back = try StrataBinary.run(["convert", "--compression", "gzip", builder.reference("e"), "g"])
        #expect(back.status == 0, "\(back.stderr)")
        let gzip = try ImageResolver.resolve(reference: builder.reference("g"))
        #expect(gzip.layers.map(\.diffID) == esgz.layers.map(\.diffID))
        #expect(gzip.layers.allSatisfy { $0.descriptor.annotations == nil })
    }

    /// A Docker-typed source (docker save style, a plain tar layer among them) becomes an OCI
    /// image: manifest, config and layer media types.
    @Test func dockerSourceBecomesOCI() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("docker"))
        _ = try builder.addLayer(entries: [Items.dir("etc"), Items.file("etc/a", "a")], mediaTypeStyle: .docker)
        _ = try builder.addLayer(entries: [Items.file("etc/b", "b")], compression: .none, mediaTypeStyle: .docker)
        try builder.write(tag: "test")
        let image = try Self.convert(builder, to: "estargz", tag: "esgz")
        #expect(image.manifest.mediaType == MediaType.ociManifest)
        #expect(image.configDescriptor.mediaType == MediaType.ociConfig)
        #expect(image.layers.allSatisfy { $0.descriptor.mediaType == MediaType.ociLayerGzip })
        let rootfs = try Umoci.unpack(layout: builder.layout, tag: "esgz", into: temp.child("bundle"))
        #expect(try FileIO.readAll(rootfs + "/etc/a") == bytes("a") && FileIO.readAll(rootfs + "/etc/b") == bytes("b"))
    }

    @Test func refusesWhatItCannotDo() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.makeSource(temp)
        let missing = try StrataBinary.run(["convert", builder.reference("test"), "x"])
        #expect(missing.status == 2 && missing.stderr.contains("--compression"))
        let unknown = try StrataBinary.run(["convert", "--compression", "lz4", builder.reference("test"), "x"])
        #expect(unknown.status == 2 && unknown.stderr.contains("lz4"))
        // A layer whose bytes are not what the config's diff_id says is not converted.
        let other = try ImageBuilder(layout: temp.child("lying"))
        try other.addLayer(entries: [Items.file("a", "a")])
        other.layers[0].diffID = Digest(sha256Hex: String(repeating: "ab", count: 32))
        try other.write(tag: "lie")
        let lie = try StrataBinary.run(["convert", "--compression", "estargz", other.reference("lie"), "x"])
        #expect(lie.status == 1 && lie.stderr.contains("diff_id"), "\(lie.stderr)")
        #expect(lie.stderr.split(separator: "\n").count == 1)
    }
}

/// `strata commit --compression estargz|zstd:chunked` (the upper is a plain directory here:
/// commit reads it as overlayfs left it).
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct CommitSeekableTests {
    @Test(arguments: ["estargz", "zstd:chunked"])
    func commitWritesTheLayerInThatFormat(compression: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try makeImage(temp, layers: [[Items.dir("etc"), Items.file("etc/base", "base")]])
        let upper = try temp.makeDirectory("upper")
        try FileIO.makeDirectories(upper + "/etc")
        try FileIO.writeAtomically(upper + "/etc/added", Items.pseudoRandom(count: 5 << 20, seed: 9), durable: false)
        let r = try StrataBinary.run(["commit", "--compression", compression, "--json", upper, builder.reference("test"), "next"])
        #expect(r.status == 0, "\(r.stderr)")
        let image = try ImageResolver.resolve(reference: builder.reference("next"))
        let top = try #require(image.layers.last)
        let annotations = top.descriptor.annotations ?? [:]
        let tool = compression == "estargz" ? "gzip" : "zstd"
        #expect(top.descriptor.mediaType == (compression == "estargz" ? MediaType.ociLayerGzip : MediaType.ociLayerZstd))
        let expectedKeys = compression == "estargz" ? ConvertTests.estargzAnnotations : ConvertTests.chunkedAnnotations
        #expect(expectedKeys.allSatisfy { annotations[$0] != nil }, "\(annotations)")
        #expect(try ConvertTests.uncompressedDigest(builder.blobPath(top.descriptor.digest), tool: tool) == top.diffID.description)
        #expect(r.stdoutString.contains(top.diffID.description))
        // The base layer is untouched; the new tree is the base plus the upper.
        #expect(image.layers.first?.descriptor == (try ImageResolver.resolve(reference: builder.reference("test"))).layers.first?.descriptor)
        let mounted: TreeSnapshot
        if compression == "estargz" {
            let c = try MountComparison.run(layout: builder.layout, tag: "next")
            #expect(c.differences.isEmpty, Comment(rawValue: c.report))
            mounted = c.mounted
        } else {
            mounted = try MountComparison.captureMount(layout: builder.layout, tag: "next", work: temp)
        }
        #expect(mounted.entry("etc/added")?.contentSHA256 == sha(Items.pseudoRandom(count: 5 << 20, seed: 9)))
        #expect(mounted.entry("etc/base") != nil)
    }
}

/// Debian 12's podman 4.3.1 (containers/storage 1.43) pulls a converted zstd:chunked image from
/// a registry: as an ordinary zstd layer by default (the tree is the source's), and through its
/// table of contents with partial pulls enabled (it finds the TOC from the legacy
/// `io.containers.zstd-chunked.*` annotations and fetches ranges: "Retrieved partial blob").
@Suite(.enabled(if: canCompareMounts && canRunPodman && TestRegistry.isAvailable,
                "needs root, podman, umoci, docker-registry, skopeo and a built strata"), .mountTimeLimit)
struct PodmanPullConvertedTests {
    /// podman with its own storage under `dir` (overlay driver), so nothing of the host's is touched.
    static func podman(_ dir: String, partial: Bool, _ args: [String]) throws -> CommandResult {
        let conf = dir + "/storage.conf"
        var text = "[storage]\ndriver = \"overlay\"\nrunroot = \"\(dir)/run\"\ngraphroot = \"\(dir)/graph\"\n"
        if partial {
            text += "[storage.options]\npull_options = {enable_partial_images = \"true\", use_hard_links = \"false\", ostree_repos = \"\"}\n"
        }
        try FileIO.makeDirectories(dir)
        try FileIO.writeAtomically(conf, bytes(text), durable: false)
        var environment: [String: String] = [:]
        for (k, v) in ProcessInfo.processInfo.environment { environment[k] = v }
        environment["CONTAINERS_STORAGE_CONF"] = conf
        return try Command.run(Mounts.tool("podman"), args, environment: environment, timeout: 300)
    }

    /// Removes the images and whatever the overlay driver left mounted under `dir`.
    static func clean(_ dir: String) {
        _ = try? podman(dir, partial: false, ["rmi", "--all", "--force"])
        for mountPoint in MountTable.mounts(under: dir) { try? Mounts.forceUnmount(mountPoint) }
    }

    @Test func podmanPullsTheZstdChunkedImage() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ConvertTests.makeSource(temp)
        let image = try ConvertTests.convert(builder, to: "zstd:chunked", tag: "zc")
        let registry = try TestRegistry()
        defer { registry.stop() }
        let remote = try registry.push(layout: builder.reference("zc"), reference: "conv:zc")

        // podman applies layers its own way (a hardlink header's owner and mode go to the
        // inode, parent directories a layer implies get the time of the pull), so the reference
        // is podman's pull of the source image itself: the converted one must give the same tree.
        let source = try registry.push(layout: builder.reference("test"), reference: "conv:src")
        let plain = temp.child("podman-plain")
        defer { Self.clean(plain) }
        var trees: [TreeSnapshot] = []
        for ref in [source, remote] {
            let pulled = try Self.podman(plain, partial: false, ["pull", "--tls-verify=false", ref])
            #expect(pulled.status == 0, "\(pulled.stderr)")
            let created = try Self.podman(plain, partial: false, ["create", "--network", "none", String(ref.dropFirst("docker://".count)), "true"])
            #expect(created.status == 0, "\(created.stderr)")
            let container = created.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)
            let mounted = try Self.podman(plain, partial: false, ["mount", container])
            let root = mounted.stdoutString.trimmingCharacters(in: .whitespacesAndNewlines)
            #expect(mounted.status == 0 && !root.isEmpty, "\(mounted.stderr)")
            defer {
                _ = try? Self.podman(plain, partial: false, ["umount", container])
                _ = try? Self.podman(plain, partial: false, ["rm", "--force", container])
            }
            trees.append(try TreeSnapshot.capture(root: root))
        }
        // Directories a layer implies without listing them get the pull's time: not compared.
        let diffs = trees[0].differences(from: trees[1], ignoring: [.dirMtime], ignoringAt: MountComparison.rootIgnores)
        #expect(diffs.isEmpty, Comment(rawValue: diffs.joined(separator: "\n")))
        #expect(trees[1].entry("big")?.contentSHA256 == sha(Items.pseudoRandom(count: 9 << 20, seed: 3)))

        let partial = temp.child("podman-partial")
        defer { Self.clean(partial) }
        let lazily = try Self.podman(partial, partial: true, ["--log-level=debug", "pull", "--tls-verify=false", remote])
        #expect(lazily.status == 0, "\(lazily.stderr)")
        for layer in image.layers {
            #expect(lazily.stderr.contains("Retrieved partial blob \(layer.descriptor.digest)"), "\(layer.descriptor.digest)")
        }
    }
}
