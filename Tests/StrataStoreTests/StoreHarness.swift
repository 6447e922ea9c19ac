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

/// A layer source over an image layout built in code: the store core tested without a
/// registry and without a mount, called the way the FUSE adapter calls it.
final class LayoutSource: LayerSource, @unchecked Sendable {
    let builder: ImageBuilder
    let cache: LayerCache
    let reference: RegistryReference
    /// Every call throws this (a registry that is down).
    var failure: String?

    init(builder: ImageBuilder, cache: LayerCache, reference: RegistryReference) {
        self.builder = builder; self.cache = cache; self.reference = reference
    }

    struct Down: Error, CustomStringConvertible { var description: String }

    func layer(reference: RegistryReference, digest: Digest) throws -> StoreLayer? {
        if let failure { throw Down(description: failure) }
        guard reference == self.reference, let l = builder.layers.first(where: { $0.descriptor.digest == digest }) else { return nil }
        return StoreLayer(digest: digest, size: UInt64(l.descriptor.size), diffID: l.diffID, compression: .gzip)
    }

    func open(reference: RegistryReference, layer: StoreLayer, spans: SpanCache) throws -> OpenedLayer {
        if let failure { throw Down(description: failure) }
        let l = builder.layers.first { $0.descriptor.digest == layer.digest }!
        let blob = LayerBlob(path: builder.blobPath(layer.digest), descriptor: l.descriptor, format: .gzip)
        _ = try cache.index(blob)
        let index = try #require(cache.load(digestHex: layer.digest.hex, verify: true))
        let data = try LayerData(index: index, blob: blob, number: 0, cache: spans, copyPath: cache.dataPath(digestHex: layer.digest.hex))
        return OpenedLayer(layer: layer, tree: LayerTree(index: index), data: data, blob: FileBlob(path: blob.path))
    }
}

struct FileBlob: StoreBlob {
    let path: String
    func read(offset: UInt64, count: Int) throws -> [UInt8] {
        let all = try FileIO.readAll(path)
        return Array(all[Int(offset)..<min(all.count, Int(offset) + count)])
    }
}

/// The store over a one-layer image: etc/ (a file with an xattr, a hardlink, a symlink, a
/// whiteout of etc/gone), opt/ opaque with opt/new, a whiteout of `d` beside the layer's own
/// directory d/ (which becomes opaque), a fifo and a device.
final class StoreHarness {
    let temp: TempDirectory
    let builder: ImageBuilder
    let source: LayoutSource
    let fs: StoreFileSystem
    static let reference = "127.0.0.1:5000/app:v1"

    var layer: ImageBuilder.Layer { builder.layers[0] }

    init() throws {
        temp = try TempDirectory(prefix: "strata-test-store-")
        builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [
            Items.dir("etc"), Items.file("etc/hosts", "hello", xattrs: ["user.k": Array("v".utf8)]),
            Items.hardlink("etc/hosts2", to: "etc/hosts"), Items.symlink("etc/link", to: "hosts"),
            Items.whiteout("etc/gone"),
            Items.dir("opt"), Items.opaque("opt"), Items.file("opt/new", "new"),
            Items.whiteout("d"), Items.dir("d"), Items.file("d/x", "x"),
            Items.fifo("run.fifo"), Items.charDevice("null", major: 1, minor: 3),
            Items.file(Array("big".utf8), Items.pseudoRandom(count: 3 << 20, seed: 5)),
        ])
        try builder.write(tag: "v1")
        let parsed = try #require(try RegistryReference.parse("docker://" + Self.reference))
        source = LayoutSource(builder: builder, cache: try LayerCache(directory: temp.child("cache")), reference: parsed)
        fs = StoreFileSystem(source: source)
    }

    func name(_ text: String) -> [UInt8] { Array(text.utf8) }

    func lookup(_ parent: UInt64, _ name: String) throws -> NodeAttributes {
        try Array(name.utf8).withUnsafeBytes { b in try fs.lookup(parent: parent, name: b) }
    }

    /// Looks `path` up name by name from the root ("REFNAME/DIGEST/diff/etc").
    func lookup(path: String) throws -> NodeAttributes {
        var inode: UInt64 = 1
        var attributes = try fs.getattr(inode: 1)
        for component in path.split(separator: "/") {
            attributes = try lookup(inode, String(component))
            inode = attributes.inode
        }
        return attributes
    }

    var layerPath: String { "\(StoreName.encode(Self.reference))/\(layer.descriptor.digest)" }

    func read(_ path: String, count: Int = 1 << 20) throws -> [UInt8] {
        let inode = try lookup(path: path).inode
        let handle = try fs.open(inode: inode, flags: O_RDONLY)
        var out: [UInt8] = []
        while true {
            var chunk: [UInt8] = []
            try fs.read(inode: inode, handle: handle, offset: UInt64(out.count), size: min(count - out.count, 128 << 10)) { chunk = Array($0) }
            if chunk.isEmpty || out.count >= count { break }
            out += chunk
        }
        return out
    }

    func names(_ path: String) throws -> [String] {
        let inode = try lookup(path: path).inode
        var names: [String] = []
        try fs.readdir(inode: inode, handle: 0, offset: 0, plus: false) { name, _, _ in
            names.append(String(decoding: name, as: UTF8.self))
            return true
        }
        return names
    }
}
