import StrataIndex
import StrataSystem
import StrataUnion

/// Opens an image's layers as one filesystem: indexes each layer (from the cache, or by reading
/// the blob once, layers in parallel), builds the union tree and the layer readers.
public enum ImageView {
    public static func open(layers blobs: [LayerBlob], cache: IndexCache, spanCacheBytes: Int = 32 << 20) throws -> ImageFileSystem {
        let indexes = try parallelMap(blobs.count) { try cache.index(blobs[$0]).index }.map { try $0.get() }
        let tree = try UnionTree(layers: indexes)
        let spans = SpanCache(capacity: spanCacheBytes)
        var data: [LayerData] = []
        for (i, blob) in blobs.enumerated() {
            data.append(try LayerData(index: indexes[i], blob: blob, number: i, cache: spans,
                                      copyPath: cache.dataPath(digestHex: blob.digestHex)))
        }
        return ImageFileSystem(tree: tree, layers: data)
    }
}

