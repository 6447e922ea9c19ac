/// The on-disk layout of a merged tree: the union of an image's layers, resolved once and kept in
/// the cache beside the layer indexes, so a warm mount maps it instead of rebuilding the union,
/// and serving a request reads only this file (the layer indexes only for their checkpoints).
/// Little-endian, fixed-size records:
///
///   header (160 bytes) | layers (80 each) | attributes (24 each) | inodes (32 each)
///   | children (8 each) | lookup slots (4 each) | extras (24 each) | xattrs (16 each)
///   | sparse segments (16 each) | names | strings
///
/// Inodes are numbered breadth first from the root (0), so a directory's children are
/// neighbours in the inode table and in the child table. A child record (inode u32, name start
/// u32) is one name in a directory; hardlinked files have several. Names are stored one after
/// another in child order, so a name ends where the next begins. Lookups hash (directory, name) into the slot table
/// (open addressing, load ≤ 3/4), whose slots hold child record numbers.
///
/// Attribute record: mode u32 (type and permissions) | uid u32 | gid u32 | mtime nanoseconds u32
/// | mtime seconds i64. Inodes share them (most files of a layer have one of a few owners,
/// modes and times), which keeps the per-inode record small: memory per entry is what a tree
/// of a few hundred thousand files costs.
///
/// Inode record: attributes u32 | nlink u32 | size u64 | data u64 | extra u32 | layer u16
/// | flags u8 | pad u8. `size` is the parent's inode for a directory (whose size is always
/// 4096; only directories need their parent, for ".."). `data` is the offset in the layer's tar stream (regular files),
/// first child << 0 | child count << 32 (directories), string offset | length << 32 (symlinks),
/// the device number (devices). `extra` numbers an extras record (xattrs, sparse map, stored
/// size) or is 0xFFFF_FFFF.
///
/// The checksum covers the whole file with its own field read as zero. The file is named by the
/// SHA-256 of its layer table (each layer's digest, stream size and index checksum), so a chain
/// of layers, or a rebuilt index, finds its own tree.
enum MergedTreeFormat {
    static let magic: [UInt8] = Array("STRATATR".utf8)
    // also part of the file's name (MergedTreeWriter.key). 2: symlinks are 0777 whatever their
    // tar header says (trees of version 1 carried the header's mode).
    static let version: UInt32 = 2
    static let headerSize = 160
    static let layerSize = 80
    static let attributeSize = 24
    static let inodeSize = 32
    static let childSize = 8
    static let slotSize = 4
    static let extraSize = 24
    static let xattrSize = 16
    static let sparseSize = 16

    // Header field offsets.
    static let offVersion = 8
    static let offLayerCount = 12
    static let offInodeCount = 16
    static let offChildCount = 20
    static let offSlotCount = 24
    static let offExtraCount = 28
    static let offXattrCount = 32
    static let offSparseCount = 36
    static let offLayers = 40
    static let offInodes = 48
    static let offChildren = 56
    static let offSlots = 64
    static let offExtras = 72
    static let offXattrs = 80
    static let offSparse = 88
    static let offStrings = 96
    static let offStringsLength = 104
    static let offTotalLength = 112
    static let offChecksum = 120
    static let offAttributeCount = 128
    static let offAttributes = 136
    static let offNames = 144
    static let offNamesLength = 152

    // Attribute and inode record field offsets.
    static let aMode = 0, aUid = 4, aGid = 8, aMtimeNsec = 12, aMtime = 16
    static let iAttributes = 0, iNlink = 4, iSize = 8, iData = 16, iExtra = 24, iLayer = 28, iFlags = 30
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
