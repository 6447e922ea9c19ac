import StrataIndex
import StrataSystem

/// Serialises a built union tree into the merged-tree format (MergedTreeFormat). Only what the
/// final view shows is written: hidden and replaced entries are dropped and inodes renumbered
/// breadth first. The same layers always give the same bytes.
public enum MergedTreeWriter {
    /// The name of the merged tree of `layers` in a cache: the format version and the layer table.
    public static func key(_ table: [UInt8]) -> [UInt8] {
        withUnsafeBytes(of: MergedTreeFormat.version.littleEndian) { Array($0) } + table
    }

    /// The layer table of `layers` (bottom first): what names and validates a merged tree.
    public static func layerTable(_ layers: [LayerIndex]) -> [UInt8] {
        var out: [UInt8] = []
        typealias L = MergedTreeFormat.Layer
        out.reserveCapacity(layers.count * L.size)
        for layer in layers {
            let r = out.count
            out += repeatElement(0, count: L.size)
            out.withUnsafeMutableBytes { b in
                b.put(bytes: Array(layer.digestHex.utf8), r, L.digestHex)
                b.put(layer.uncompressedSize, r, L.streamSize)
                b.put(layer.checksum, r, L.indexChecksum)
            }
        }
        return out
    }

    /// The tree's file, in memory.
    public static func serialize(_ tree: UnionTree) -> [UInt8] {
        let sink = CacheFileSink()
        do { try write(tree, into: sink) } catch { preconditionFailure("writing a merged tree to memory cannot fail: \(error)") }
        return sink.memory
    }

    /// Writes the tree's file into `sink`, each section streamed in order of inodes (only the
    /// lookup slots, which are filled in hash order, are held whole), then the header with the
    /// checksum of the whole file, read back.
    public static func write(_ tree: UnionTree, into sink: CacheFileSink) throws {
        // Names are no longer looked up: the table's slots go (lookups on the tree then scan).
        tree.dropLookupSlots()
        var entries = tree.entryReader()
        typealias F = MergedTreeFormat
        // Number the reachable inodes breadth first; a hardlinked file keeps its first number.
        // Only directories are queued (files have no children): the order of inodes is found
        // again, the same way, when they are written. Attributes shared by inodes are numbered
        // in first use, on the way.
        let unseen = UInt32.max
        var number = [UInt32](repeating: unseen, count: tree.inodeCount)
        number[0] = 0
        var inodeCount = 1
        var directories: [UInt32] = [0]   // directory inodes in the order they are numbered
        var childStarts: [UInt32] = []    // by the same position: the directory's first child record
        var attributeNumber: [Attributes: UInt32] = [:]
        var attributes: [Attributes] = []
        var childCount = 0, namesLength = 0, stringsLength = 0, extraCount = 0, xattrCount = 0, sparseCount = 0
        var lastCounted = Attributes(mode: 0, uid: 0, gid: 0, nanoseconds: 0, seconds: 0)
        func count(_ old: UInt32) {
            let jumps = entries.jumps
            let e = entries.entry(of: old)
            // Entries read in order touch few pages; each read out of order (a directory's
            // own entry, far from its children) brings in a few of its own.
            if inodeCount % (1 << 14) == 0 || (entries.jumps != jumps && entries.jumps % 256 == 0) { releaseIndexPages(tree) }
            let a = inodeAttributes(e, of: old, in: tree)
            if a != lastCounted, attributeNumber[a] == nil {
                attributeNumber[a] = UInt32(attributes.count)
                attributes.append(a)
            }
            lastCounted = a
            guard let e else { return }
            if e.kind == .symlink { stringsLength += e.linkTarget.count }
            if e.xattrCount > 0 || e.isSparse {
                extraCount += 1
                xattrCount += Int(e.xattrCount)
                if e.isSparse { sparseCount += Int(e.sparseCount) }
                let index = tree.layers[Int(tree.sources[Int(old)].layer)]
                for i in 0..<Int(e.xattrCount) {
                    let x = index.xattr(Int(e.xattrFirst) + i)
                    stringsLength += x.name.count + x.value.count
                }
            }
        }
        count(0)
        var head = 0
        while head < directories.count {
            let directory = directories[head]
            head += 1
            childStarts.append(UInt32(childCount))
            for child in tree.children[Int(directory)] {
                childCount += 1
                namesLength += child.name.count
                if number[Int(child.inode)] == unseen {
                    number[Int(child.inode)] = UInt32(inodeCount)
                    inodeCount += 1
                    count(child.inode)
                    if tree.isDirectory[Int(child.inode)] { directories.append(child.inode) }
                }
            }
        }

        let layers = layerTable(tree.layers)
        let slotCount = F.slotCount(children: childCount)
        // The sections one after another in file order, each with its record count (bytes for
        // names and strings).
        let counts: [(F.Section, Int)] = [
            (F.layers, tree.layers.count), (F.attributes, attributes.count), (F.inodes, inodeCount),
            (F.children, childCount), (F.slots, slotCount), (F.extras, extraCount), (F.xattrs, xattrCount),
            (F.sparse, sparseCount), (F.names, namesLength), (F.strings, stringsLength),
        ]
        var offsets: [Int] = []
        var total = F.Header.size
        for (section, count) in counts {
            offsets.append(total)
            total += count * section.recordSize
        }
        let (offLayers, offAttributes, offInodes, offChildren, offSlots) = (offsets[0], offsets[1], offsets[2], offsets[3], offsets[4])
        let (offExtras, offXattrs, offSparse, offNames, offStrings) = (offsets[5], offsets[6], offsets[7], offsets[8], offsets[9])

        typealias H = F.Header
        typealias A = F.Attributes
        typealias I = F.Inode
        typealias C = F.Child
        typealias X = F.Extra
        typealias XA = F.Xattr
        typealias S = F.Sparse
        var header = [UInt8](repeating: 0, count: H.size)
        header.withUnsafeMutableBytes { out in
            out.put(bytes: F.file.magic, 0, H.magic)
            out.put(F.version, 0, H.version)
            for ((section, count), offset) in zip(counts, offsets) {
                out.put(UInt64(offset), 0, section.start)
                if section.count.width == 4 { out.put(UInt32(count), 0, section.count) } else { out.put(UInt64(count), 0, section.count) }
            }
            out.put(UInt64(total), 0, H.totalLength)
        }
        try sink.write(header, at: 0)   // its checksum field is zero until the end
        try sink.write(layers, at: offLayers)
        let attributeRecords = SectionStream(sink, at: offAttributes)
        for a in attributes {
            try attributeRecords.record(A.size) { r in
                r.put(a.mode, 0, A.mode); r.put(a.uid, 0, A.uid); r.put(a.gid, 0, A.gid)
                r.put(a.nanoseconds, 0, A.mtimeNanoseconds); r.put(a.seconds, 0, A.mtimeSeconds)
            }
        }
        try attributeRecords.flush()
        attributes = []

        let inodes = SectionStream(sink, at: offInodes), children = SectionStream(sink, at: offChildren)
        let extras = SectionStream(sink, at: offExtras), xattrs = SectionStream(sink, at: offXattrs)
        let sparseSegments = SectionStream(sink, at: offSparse), names = SectionStream(sink, at: offNames)
        let strings = SectionStream(sink, at: offStrings)
        var slots = [UInt32](repeating: F.emptySlot, count: slotCount)
        func string(_ b: UnsafeRawBufferPointer) throws -> (UInt32, UInt32) {
            let at = strings.written
            try strings.append(b)
            return (UInt32(at), UInt32(b.count))
        }

        var extra = 0, xattr = 0, sparse = 0
        var written = 0, directoriesWritten = 0
        // The inode record of `old`, whose number is the next one.
        func writeInode(_ old: UInt32) throws {
            written += 1
            var data: UInt64 = 0, size: UInt64 = 0, layer: UInt16 = 0, flags: UInt8 = 0, extraNumber = F.noExtra
            let jumps = entries.jumps
            let e = entries.entry(of: old)
            if written % (1 << 14) == 0 || (entries.jumps != jumps && entries.jumps % 256 == 0) { releaseIndexPages(tree) }
            let attribute = attributeNumber[inodeAttributes(e, of: old, in: tree)]!
            if let e {
                switch e.kind {
                case .symlink:
                    let (off, len) = try string(e.linkTarget)
                    data = UInt64(off) | UInt64(len) << 32
                    size = UInt64(len)
                case .characterDevice, .blockDevice: data = DeviceNumber.make(major: e.devMajor, minor: e.devMinor)
                case .regular, .hardlink: data = e.dataOffset; size = e.size
                default: break
                }
                layer = tree.sources[Int(old)].layer
                if e.isSparse { flags = F.flagSparse }
                if e.xattrCount > 0 || e.isSparse {
                    let index = tree.layers[Int(layer)]
                    let (xattrFirst, sparseFirst) = (UInt32(xattr), UInt32(sparse))
                    try extras.record(X.size) { x in
                        x.put(xattrFirst, 0, X.xattrFirst)
                        x.put(e.xattrCount, 0, X.xattrCount)
                        x.put(sparseFirst, 0, X.sparseFirst)
                        x.put(e.isSparse ? e.sparseCount : 0, 0, X.sparseCount)
                        x.put(e.isSparse ? e.storedSize : e.size, 0, X.storedSize)
                    }
                    for i in 0..<Int(e.xattrCount) {
                        let xa = index.xattr(Int(e.xattrFirst) + i)
                        let (no, nl) = try string(xa.name), (vo, vl) = try string(xa.value)
                        try xattrs.record(XA.size) { r in
                            r.put(no, 0, XA.nameOffset); r.put(nl, 0, XA.nameLength)
                            r.put(vo, 0, XA.valueOffset); r.put(vl, 0, XA.valueLength)
                        }
                        xattr += 1
                    }
                    if e.isSparse {
                        for i in 0..<Int(e.sparseCount) {
                            let s = index.sparseSegment(Int(e.sparseFirst) + i)
                            try sparseSegments.record(S.size) { r in r.put(s.offset, 0, S.offset); r.put(s.length, 0, S.length) }
                            sparse += 1
                        }
                    }
                    extraNumber = UInt32(extra)
                    extra += 1
                }
            }
            if tree.isDirectory[Int(old)] {
                // Directories are numbered in the order they were queued.
                data = UInt64(childStarts[directoriesWritten]) | UInt64(tree.children[Int(old)].count) << 32
                directoriesWritten += 1
                size = UInt64(number[Int(tree.parent[Int(old)])])   // a directory's size field holds its parent
            }
            let nlink = tree.nlink[Int(old)]
            try inodes.record(I.size) { r in
                r.put(attribute, 0, I.attributes)
                r.put(nlink, 0, I.nlink)
                r.put(size, 0, I.fileSize)
                r.put(data, 0, I.data)
                r.put(extraNumber, 0, I.extra)
                r.put(layer, 0, I.layer)
                r.put(flags, 0, I.flags)
            }
        }
        // The same walk as the numbering: an inode's record is written where it was numbered.
        try writeInode(0)
        var child = 0
        for directory in directories {
            let n = number[Int(directory)]
            for c in tree.children[Int(directory)] {
                let inode = number[Int(c.inode)], nameStart = UInt32(names.written)
                try children.record(C.size) { r in r.put(inode, 0, C.inode); r.put(nameStart, 0, C.nameStart) }
                try names.append(c.name)
                var s = ChildTable.hash(n, c.name) & (slotCount - 1)
                while slots[s] != F.emptySlot { s = (s + 1) & (slotCount - 1) }
                slots[s] = UInt32(child)
                child += 1
                if Int(inode) == written { try writeInode(c.inode) }
            }
        }
        for s in [inodes, children, extras, xattrs, sparseSegments, names, strings] { try s.flush() }
        try slots.withUnsafeBytes { raw in
            if UInt32(1).littleEndian == 1 { try sink.write(raw, at: offSlots); return }
            try sink.write(slots.flatMap { s in withUnsafeBytes(of: s.littleEndian) { Array($0) } }, at: offSlots)
        }
        slots = []
        let sum = try sink.checksum(at: 0, count: total)
        try sink.write(withUnsafeBytes(of: sum.littleEndian) { Array($0) }, at: H.checksum.offset)
    }

    /// The names and entries the writer reads come from the layer indexes' mappings, in about
    /// the order they were first read: their pages are dropped now and then, so writing a tree
    /// does not hold them all (they come back from the page cache when touched).
    private static func releaseIndexPages(_ tree: UnionTree) {
        for index in tree.layers { index.releaseEntries(0..<index.entryStreamLength) }
    }

    /// Inode `old`'s attributes: its entry's, or an implied directory's (the group it inherits
    /// looked up only then: most inodes have an entry).
    static func inodeAttributes(_ e: IndexEntry?, of old: UInt32, in tree: UnionTree) -> Attributes {
        e == nil ? Attributes(nil, impliedGroup: tree.impliedGroups[old]) : Attributes(e)
    }

    /// What inodes share: type and permissions, owner, modification time.
    struct Attributes: Hashable {
        var mode: UInt32, uid: UInt32, gid: UInt32, nanoseconds: UInt32, seconds: Int64

        /// `impliedGroup`: for a directory no layer lists, the group it inherits (set-group-ID).
        init(_ e: IndexEntry?, impliedGroup: UInt32? = nil) {
            typealias F = MergedTreeFormat
            guard let e else {
                // A directory no layer lists: 0755, 0:0, time 0 (what extractors create); inside
                // a set-group-ID directory, 2755 and that directory's group (as mkdir makes it).
                if let group = impliedGroup {
                    self.init(mode: F.typeDirectory | 0o2755, uid: 0, gid: group, nanoseconds: 0, seconds: 0)
                } else {
                    self.init(mode: F.typeDirectory | 0o755, uid: 0, gid: 0, nanoseconds: 0, seconds: 0)
                }
                return
            }
            let type: UInt32
            switch e.kind {
            case .directory: type = F.typeDirectory
            case .symlink: type = F.typeSymlink
            case .characterDevice: type = F.typeCharacter
            case .blockDevice: type = F.typeBlock
            case .fifo: type = F.typeFifo
            default: type = F.typeRegular
            }
            self.init(mode: type | (e.mode & 0o7777), uid: e.uid, gid: e.gid, nanoseconds: e.mtimeNanoseconds,
                      seconds: e.mtimeSeconds)
        }

        init(mode: UInt32, uid: UInt32, gid: UInt32, nanoseconds: UInt32, seconds: Int64) {
            self.mode = mode; self.uid = uid; self.gid = gid; self.nanoseconds = nanoseconds; self.seconds = seconds
        }
    }
}
