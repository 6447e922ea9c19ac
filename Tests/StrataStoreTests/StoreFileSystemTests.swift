#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataFS
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataStore
import StrataSystem
import StrataTestSupport
import Testing

/// The Additional Layer Store's names (containers/storage 1.43's `getAdditionalLayerPath`).
@Suite struct StoreNameTests {
    @Test func aReferenceIsTheStandardBase64OfWhatCImageNames() throws {
        let name = Data("127.0.0.1:5000/app:v1".utf8).base64EncodedString()
        #expect(StoreName.encode("127.0.0.1:5000/app:v1") == name)
        #expect(StoreName.encode("docker://127.0.0.1:5000/app:v1") == name)
        let r = try #require(StoreName.reference(Array(name.utf8)))
        #expect(r.host == "127.0.0.1:5000" && r.repository == "app" && r.tag == "v1" && r.digest == nil)
        let pinned = "registry.example/ns/app@sha256:" + String(repeating: "ab", count: 32)
        let p = try #require(StoreName.reference(Array(StoreName.encode(pinned).utf8)))
        #expect(p.digest?.hex == String(repeating: "ab", count: 32) && p.tag == nil)
    }

    @Test(arguments: ["not base64!", "", "MTI3LjAuMC4xOjUwMDAvYXBwOnYx=", "MTI3LjAuMC4xOjUwMDAvYXBwOnYx\n",
                      Data("docker://127.0.0.1:5000/app:v1".utf8).base64EncodedString(),
                      Data("no-registry-host".utf8).base64EncodedString(),
                      Data("127.0.0.1:5000/UPPER:v1".utf8).base64EncodedString()])
    func anythingElseIsNoReference(_ name: String) {
        #expect(StoreName.reference(Array(name.utf8)) == nil, "\(name)")
    }

    @Test func layerDigests() {
        let hex = String(repeating: "0f", count: 32)
        #expect(StoreName.digest(Array("sha256:\(hex)".utf8))?.hex == hex)
        for bad in ["sha256:" + hex.uppercased(), "sha256:" + hex.dropLast(), "sha512:" + hex, hex, "use", "diff"] {
            #expect(StoreName.digest(Array(bad.utf8)) == nil, "\(bad)")
        }
    }

    @Test func infoIsTheJSONContainersStorageDecodes() throws {
        let blob = Digest.sha256(of: [1]), diff = Digest.sha256(of: [2])
        let info = LayerInfo(compressedDigest: blob, compressedSize: 1234, diffDigest: diff, diffSize: 5678, compression: .zstd)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(info.json)) as? [String: Any])
        #expect(Set(object.keys) == ["compressed-diff-digest", "compressed-size", "diff-digest", "diff-size", "compression"])
        #expect(object["compressed-diff-digest"] as? String == blob.description)
        #expect(object["diff-digest"] as? String == diff.description)
        #expect((object["compressed-size"] as? NSNumber)?.int64Value == 1234)
        #expect((object["diff-size"] as? NSNumber)?.int64Value == 5678)
        #expect((object["compression"] as? NSNumber)?.intValue == 4)
        #expect(LayerInfo.code(.gzip) == 2 && LayerInfo.code(.none) == 0)
    }
}

/// The store's file system core without a mount: the layer's own tree with overlayfs-native
/// whiteouts, info, blob, use/release, and the hostile names.
@Suite struct StoreFileSystemTests {
    @Test func diffIsTheLayersOwnTreeWithOverlayWhiteouts() throws {
        let h = try StoreHarness()
        let diff = h.layerPath + "/diff"
        #expect(try h.lookup(path: h.layerPath).mode & UInt32(S_IFMT) == UInt32(S_IFDIR))
        #expect(try h.lookup(path: diff).mode & UInt32(S_IFMT) == UInt32(S_IFDIR))
        #expect(Set(try h.names(diff + "/etc")) == [".", "..", "hosts", "hosts2", "link", "gone"])
        // .wh.gone: a character device 0/0 named gone, mode 0, owned by root; no .wh. name.
        let gone = try h.lookup(path: diff + "/etc/gone")
        #expect(gone.mode == UInt32(S_IFCHR) && gone.rdev == 0 && gone.uid == 0)
        #expect(throws: FSError(ENOENT)) { try h.lookup(path: diff + "/etc/.wh.gone") }
        // .wh..wh..opq: the directory is opaque, for kernel (trusted) and userxattr mounts.
        let opt = try h.lookup(path: diff + "/opt").inode
        #expect(try h.fs.getxattr(inode: opt, name: "trusted.overlay.opaque") == Array("y".utf8))
        #expect(try h.fs.getxattr(inode: opt, name: "user.overlay.opaque") == Array("y".utf8))
        #expect(Set(try h.names(diff + "/opt")) == [".", "..", "new"])
        // A whiteout of a name the layer itself holds as a directory: that directory, opaque.
        let d = try h.lookup(path: diff + "/d")
        #expect(d.mode & UInt32(S_IFMT) == UInt32(S_IFDIR))
        #expect(try h.fs.getxattr(inode: d.inode, name: "trusted.overlay.opaque") == Array("y".utf8))
        #expect(throws: FSError(ENODATA)) { try h.fs.getxattr(inode: try h.lookup(path: diff + "/etc").inode, name: "trusted.overlay.opaque") }
        // Ordinary entries: data, xattrs, hardlinks, symlinks, devices.
        #expect(try h.read(diff + "/etc/hosts") == Array("hello".utf8))
        let hosts = try h.lookup(path: diff + "/etc/hosts"), hosts2 = try h.lookup(path: diff + "/etc/hosts2")
        #expect(hosts.inode == hosts2.inode && hosts.nlink == 2)
        #expect(try h.fs.getxattr(inode: hosts.inode, name: "user.k") == Array("v".utf8))
        #expect(try h.fs.readlink(inode: try h.lookup(path: diff + "/etc/link").inode) == Array("hosts".utf8))
        #expect(try h.lookup(path: diff + "/null").rdev == DeviceNumber.make(major: 1, minor: 3))
        #expect(try h.lookup(path: diff + "/run.fifo").mode & UInt32(S_IFMT) == UInt32(S_IFIFO))
        #expect(try h.read(diff + "/big", count: 4 << 20) == Items.pseudoRandom(count: 3 << 20, seed: 5))
    }

    @Test func infoAndBlob() throws {
        let h = try StoreHarness()
        let info = try h.read(h.layerPath + "/info")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(info)) as? [String: Any])
        #expect(object["compressed-diff-digest"] as? String == h.layer.descriptor.digest.description)
        #expect(object["diff-digest"] as? String == h.layer.diffID.description)
        #expect((object["compressed-size"] as? NSNumber)?.int64Value == h.layer.descriptor.size)
        #expect((object["compression"] as? NSNumber)?.intValue == 2)
        #expect(((object["diff-size"] as? NSNumber)?.int64Value ?? 0) > 3 << 20)
        #expect(try h.lookup(path: h.layerPath + "/info").size == UInt64(info.count))
        let blob = try h.read(h.layerPath + "/blob", count: 8 << 20)
        #expect(blob == (try FileIO.readAll(h.builder.blobPath(h.layer.descriptor.digest))))
        #expect(try h.lookup(path: h.layerPath + "/blob").size == UInt64(h.layer.descriptor.size))
    }

    @Test func useAndReleaseAreCountedAndAnsweredENOENT() throws {
        let h = try StoreHarness()
        let layerDir = try h.lookup(path: h.layerPath).inode
        let refDir = try h.lookup(path: StoreName.encode(StoreHarness.reference)).inode
        #expect(throws: FSError(ENOENT)) { try h.lookup(layerDir, "use") }
        let context = RequestContext(uid: 0, gid: 0, pid: 1, umask: 0o022)
        for _ in 0..<2 {
            #expect(throws: FSError(ENOENT)) {
                _ = try Array("use".utf8).withUnsafeBytes { n in
                    try h.fs.create(parent: layerDir, name: n, mode: 0o644, flags: O_RDWR | O_CREAT | O_TRUNC, context: context)
                }
            }
        }
        let reference = try #require(StoreName.reference(Array(StoreName.encode(StoreHarness.reference).utf8)))
        #expect(h.fs.uses(reference: reference, digest: h.layer.descriptor.digest) == 2)
        #expect(throws: FSError(ENOENT)) {
            try Array(h.layer.descriptor.digest.description.utf8).withUnsafeBytes { n in try h.fs.rmdir(parent: refDir, name: n) }
        }
        #expect(h.fs.uses(reference: reference, digest: h.layer.descriptor.digest) == 1)
        // Still there after a release: podman's committed layers keep pointing at it.
        #expect(try h.read(h.layerPath + "/diff/opt/new") == Array("new".utf8))
        // Nothing else writes.
        #expect(throws: FSError(EROFS)) {
            _ = try Array("x".utf8).withUnsafeBytes { n in try h.fs.mkdir(parent: layerDir, name: n, mode: 0o755, context: context) }
        }
        #expect(throws: FSError(EROFS)) { _ = try h.fs.open(inode: try h.lookup(path: h.layerPath + "/info").inode, flags: O_WRONLY) }
    }

    @Test func unknownOrMalformedNamesAreENOENTAndAnUnreachableSourceIsEIO() throws {
        let h = try StoreHarness()
        // The registry down before the layer was ever looked up: EIO, not "absent".
        h.source.failure = "connection refused"
        #expect(throws: FSError(EIO)) { try h.lookup(path: h.layerPath) }
        h.source.failure = nil
        #expect(throws: FSError(ENOENT)) { try h.lookup(1, "not base64!") }
        #expect(throws: FSError(ENOENT)) { try h.lookup(1, Data("docker://127.0.0.1:5000/app:v1".utf8).base64EncodedString()) }
        let other = StoreName.encode("127.0.0.1:5000/other:v1")
        #expect(throws: FSError(ENOENT)) { try h.lookup(path: "\(other)/\(h.layer.descriptor.digest)") }
        let ref = StoreName.encode(StoreHarness.reference)
        #expect(throws: FSError(ENOENT)) { try h.lookup(path: "\(ref)/\(Digest.sha256(of: [9]))") }
        #expect(throws: FSError(ENOENT)) { try h.lookup(path: "\(ref)/sha256:xyz") }
        #expect(throws: FSError(ENOENT)) { try h.lookup(path: h.layerPath + "/use") }
    }
}

/// A layer is applied to an empty directory: what would reach outside it is left out, logged.
@Suite struct LayerTreeEdgeTests {
    @Test func entriesUnderASymlinkAndHardlinksToOtherLayersAreLeftOut() throws {
        let temp = try TempDirectory(prefix: "strata-test-store-")
        let builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [
            Items.dir("etc"), Items.symlink("s", to: "etc"), Items.file("s/x", "x"),
            Items.hardlink("h", to: "usr/lower-file"), Items.file("kept", "kept"),
        ])
        try builder.write(tag: "v1")
        let reference = try #require(try RegistryReference.parse("docker://" + StoreHarness.reference))
        let cache = try LayerCache(directory: temp.child("cache"))
        let source = LayoutSource(builder: builder, cache: cache, reference: reference)
        let layer = try #require(try source.layer(reference: reference, digest: builder.layers[0].descriptor.digest))
        let opened = try source.open(reference: reference, layer: layer, spans: SpanCache(capacity: 1 << 20))
        let tree = opened.tree
        let names = Set(tree.children(0).map { String(decoding: $0.name, as: UTF8.self) })
        #expect(names == ["etc", "s", "kept"])
        let etc = try #require(tree.children(0).first { $0.name == Array("etc".utf8) }?.node)
        #expect(tree.children(etc).isEmpty)
        #expect(tree.skipped.count == 2, "\(tree.skipped)")
        #expect(tree.skipped.allSatisfy { $0.contains("layer sha256:\(builder.layers[0].descriptor.digest.hex)") })
    }
}
