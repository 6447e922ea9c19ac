import StrataFS
import StrataIndex
import StrataOCI

/// The filesystem core called by path, without a mount: name by name from the root (inode 1),
/// the way the FUSE adapter reaches it.
public enum CoreCalls {
    public static let root: UInt64 = 1

    /// The read-only core over an image of `layers` (bottom first, each a list of entries),
    /// opened as a mount opens it. The layout and the index cache go into `directory`.
    public static func open(layers: [[TarItem]], compression: ImageBuilder.Compression, in directory: String) throws -> ImageFileSystem {
        let builder = try ImageBuilder(layout: directory + "/layout")
        let blobs = try layers.map { entries in
            let layer = try builder.addLayer(entries: entries, compression: compression)
            return LayerBlob(path: builder.blobPath(layer.descriptor.digest), descriptor: layer.descriptor,
                             format: try MediaType.layerFormat(layer.descriptor.mediaType))
        }
        return try ImageView.open(layers: blobs, cache: try LayerCache(directory: directory + "/cache"))
    }

    /// Runs `body` with `name`'s bytes, as the adapter hands a name to the core.
    public static func withName<T>(_ name: String, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        let bytes = Array(name.utf8)
        return try bytes.withUnsafeBytes { (raw) throws -> T in try body(raw) }
    }

    /// The attributes of `path` ("a/b"; "" for the root) in `fs`.
    public static func lookup(_ fs: any FileSystem, _ path: String) throws -> NodeAttributes {
        var current = try fs.getattr(inode: root)
        for part in path.split(separator: "/") {
            let parent = current.inode
            current = try withName(String(part)) { (n) throws in try fs.lookup(parent: parent, name: n) }
        }
        return current
    }

    /// The errno `body` fails with (an `FSError`'s), 0 if it succeeds, -1 for another error.
    public static func errorCode(_ body: () throws -> Void) -> Int32 {
        do { try body(); return 0 } catch { return (error as? FSError)?.code ?? -1 }
    }
}
