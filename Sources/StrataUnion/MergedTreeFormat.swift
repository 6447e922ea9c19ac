import StrataIndex

/// The on-disk layout of a merged tree, written down here once: the writer (`MergedTreeWriter`)
/// stores and the reader (`MergedTree`) loads every field through these constants, and
/// `CacheFileFormat` checks the header and the sections' bounds. The merged tree is the union of
/// an image's layers, resolved once and kept in the cache beside the layer indexes, so a warm
/// mount maps it instead of rebuilding the union, and serving a request reads only this file
/// (the layer indexes only for their checkpoints). Little-endian, fixed-size records:
///
///   header (160 bytes) | layers (80 each) | attributes (24 each) | inodes (32 each)
///   | children (8 each) | lookup slots (4 each) | extras (24 each) | xattrs (16 each)
///   | sparse segments (16 each) | names | strings
///
/// Inodes are numbered breadth first from the root (0), so a directory's children are
/// neighbours in the inode table and in the child table. A child record is one name in a
/// directory; hardlinked files have several. Names are stored one after another in child order,
/// so a name ends where the next begins. Lookups hash (directory, name) into the slot table
/// (open addressing, load ≤ 3/4), whose slots hold child record numbers.
///
/// Attribute records are shared by inodes (most files of a layer have one of a few owners,
/// modes and times), which keeps the per-inode record small: memory per entry is what a tree
/// of a few hundred thousand files costs.
///
/// An inode's `fileSize` is the parent's inode for a directory (whose size is always 4096;
/// only directories need their parent, for ".."). `data` is the offset in the layer's tar
/// stream (regular files), first child << 0 | child count << 32 (directories), string offset |
/// length << 32 (symlinks), the device number (devices). `extra` numbers an extras record
/// (xattrs, sparse map, stored size) or is `noExtra`.
///
/// The checksum covers the whole file with its own field read as zero. The file is named by the
/// SHA-256 of its layer table (each layer's digest, stream size and index checksum), so a chain
/// of layers, or a rebuilt index, finds its own tree. Moving a field changes the bytes of every
/// tree: `version` must change with it (MergedTreeFormatTests holds a fixed tree's digest).
enum MergedTreeFormat {
    typealias Field = FormatField
    // also part of the file's name (MergedTreeWriter.key). 2: symlinks are 0777 whatever their
    // tar header says (trees of version 1 carried the header's mode). 3: a directory no layer
    // lists, made inside a set-group-ID directory, has that directory's group and 2755.
    static let version: UInt32 = 3

    /// The header: what `CacheFileFormat` checks, then the counts and where the sections are.
    enum Header {
        static let size = 160
        static let magic = Field(0, 8)   // "STRATATR"
        static let version = Field(8, 4)
        static let layerCount = Field(12, 4)
        static let inodeCount = Field(16, 4)
        static let childCount = Field(20, 4)
        static let slotCount = Field(24, 4)
        static let extraCount = Field(28, 4)
        static let xattrCount = Field(32, 4)
        static let sparseCount = Field(36, 4)
        static let layers = Field(40, 8)
        static let inodes = Field(48, 8)
        static let children = Field(56, 8)
        static let slots = Field(64, 8)
        static let extras = Field(72, 8)
        static let xattrs = Field(80, 8)
        static let sparse = Field(88, 8)
        static let strings = Field(96, 8)
        static let stringsLength = Field(104, 8)
        static let totalLength = Field(112, 8)
        static let checksum = Field(120, 8)   // of the whole file, this field read as zero
        static let attributeCount = Field(128, 4)
        static let pad = Field(132, 4)
        static let attributes = Field(136, 8)
        static let names = Field(144, 8)
        static let namesLength = Field(152, 8)
        static let all = [magic, version, layerCount, inodeCount, childCount, slotCount, extraCount, xattrCount,
                          sparseCount, layers, inodes, children, slots, extras, xattrs, sparse, strings, stringsLength,
                          totalLength, checksum, attributeCount, pad, attributes, names, namesLength]
    }

    /// One layer of the chain (MergedTreeWriter.layerTable): what names and validates a tree.
    enum Layer {
        static let size = 80
        static let digestHex = Field(0, 64)   // ASCII, zero-padded
        static let streamSize = Field(64, 8)  // the uncompressed tar stream's size
        static let indexChecksum = Field(72, 8)   // LayerIndex.checksum
        static let all = [digestHex, streamSize, indexChecksum]
    }

    /// Shared by inodes: type and permissions, owner, modification time.
    enum Attributes {
        static let size = 24
        static let mode = Field(0, 4)   // type and permissions
        static let uid = Field(4, 4), gid = Field(8, 4)
        static let mtimeNanoseconds = Field(12, 4)
        static let mtimeSeconds = Field(16, 8)   // signed
        static let all = [mode, uid, gid, mtimeNanoseconds, mtimeSeconds]
    }

    /// One inode; see the type's comment for what `size` and `data` hold per file type.
    enum Inode {
        static let size = 32
        static let attributes = Field(0, 4)   // attributes record number
        static let nlink = Field(4, 4)
        static let fileSize = Field(8, 8)
        static let data = Field(16, 8)
        static let extra = Field(24, 4)   // extras record number or noExtra
        static let layer = Field(28, 2)
        static let flags = Field(30, 1)   // flagSparse
        static let pad = Field(31, 1)
        static let all = [attributes, nlink, fileSize, data, extra, layer, flags, pad]
    }

    /// One name in a directory.
    enum Child {
        static let size = 8
        static let inode = Field(0, 4)
        static let nameStart = Field(4, 4)   // in the names section; the name ends where the next begins
        static let all = [inode, nameStart]
    }

    /// One lookup slot: a child record number or emptySlot.
    enum Slot {
        static let size = 4
        static let child = Field(0, 4)
        static let all = [child]
    }

    /// What few inodes have: their xattrs and sparse map (runs of those sections) and the bytes
    /// a sparse file stores.
    enum Extra {
        static let size = 24
        static let xattrFirst = Field(0, 4), xattrCount = Field(4, 4)
        static let sparseFirst = Field(8, 4), sparseCount = Field(12, 4)
        static let storedSize = Field(16, 8)
        static let all = [xattrFirst, xattrCount, sparseFirst, sparseCount, storedSize]
    }

    typealias Xattr = CacheRecord.Xattr
    typealias Sparse = CacheRecord.Sparse

    typealias Section = CacheFileFormat.Section
    static let layers = Section("layers", start: Header.layers, count: Header.layerCount, recordSize: Layer.size)
    static let attributes = Section("attributes", start: Header.attributes, count: Header.attributeCount, recordSize: Attributes.size)
    static let inodes = Section("inodes", start: Header.inodes, count: Header.inodeCount, recordSize: Inode.size)
    static let children = Section("children", start: Header.children, count: Header.childCount, recordSize: Child.size)
    static let slots = Section("lookup slots", start: Header.slots, count: Header.slotCount, recordSize: Slot.size)
    static let extras = Section("extras", start: Header.extras, count: Header.extraCount, recordSize: Extra.size)
    static let xattrs = Section("xattrs", start: Header.xattrs, count: Header.xattrCount, recordSize: Xattr.size)
    static let sparse = Section("sparse segments", start: Header.sparse, count: Header.sparseCount, recordSize: Sparse.size)
    static let names = Section("names", start: Header.names, count: Header.namesLength, recordSize: 1)
    static let strings = Section("strings", start: Header.strings, count: Header.stringsLength, recordSize: 1)

    /// The sections in file order, packed (records are read unaligned).
    static let file = CacheFileFormat(
        magic: "STRATATR", version: version, headerSize: Header.size, magicField: Header.magic, versionField: Header.version,
        totalLength: Header.totalLength, checksum: Header.checksum, checksumCoversHeaderOnly: false, alignment: 1,
        sections: [layers, attributes, inodes, children, slots, extras, xattrs, sparse, names, strings])

    static let directorySize: UInt64 = 4096

    static let flagSparse: UInt8 = 1
    static let noExtra = UInt32.max
    static let emptySlot = UInt32.max

    // File types (st_mode & S_IFMT), spelled out so the format does not depend on a libc.
    static let typeMask: UInt32 = 0o170000
    static let typeDirectory: UInt32 = 0o040000
    static let typeRegular: UInt32 = 0o100000
    static let typeSymlink: UInt32 = 0o120000
    static let typeCharacter: UInt32 = 0o020000
    static let typeBlock: UInt32 = 0o060000
    static let typeFifo: UInt32 = 0o010000

    /// The slot table's size for `children` names: a power of two, load at most 3/4.
    static func slotCount(children: Int) -> Int {
        var c = 16
        while c * 3 < children * 4 { c <<= 1 }
        return c
    }
}
