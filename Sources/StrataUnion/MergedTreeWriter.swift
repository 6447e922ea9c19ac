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

    public static func serialize(_ tree: UnionTree) -> [UInt8] {
        var entries = tree.entryReader()
        // Number the reachable inodes breadth first; a hardlinked file keeps its first number.
        let unseen = UInt32.max
        var number = [UInt32](repeating: unseen, count: tree.inodeCount)
        var order: [UInt32] = [0]
        var parentOf: [UInt32] = [0]   // by new number: the directory that names it (directories)
        number[0] = 0
        var childCount = 0, namesLength = 0, stringsLength = 0, extraCount = 0, xattrCount = 0, sparseCount = 0
        var head = 0
        while head < order.count {
            let old = order[head]
            head += 1
            if tree.isDirectory[Int(old)] {
                for child in tree.children[Int(old)] {
                    childCount += 1
                    namesLength += child.name.count
                    if number[Int(child.inode)] == unseen {
                        number[Int(child.inode)] = UInt32(order.count)
                        order.append(child.inode)
                        parentOf.append(number[Int(old)])
                    }
                }
            }
            if let e = entries.entry(of: old) {
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
        }

        typealias F = MergedTreeFormat
        // Attributes shared by inodes, numbered in first use.
        var attributeNumber: [Attributes: UInt32] = [:]
        var attributes: [Attributes] = []
        var attributeOf = [UInt32](repeating: 0, count: order.count)
        for (n, old) in order.enumerated() {
            let a = Attributes(entries.entry(of: old))
            if let k = attributeNumber[a] { attributeOf[n] = k; continue }
            attributeNumber[a] = UInt32(attributes.count)
            attributeOf[n] = UInt32(attributes.count)
            attributes.append(a)
        }

        let layers = layerTable(tree.layers)
        let slotCount = F.slotCount(children: childCount)
        // The sections one after another in file order, each with its record count (bytes for
        // names and strings).
        let counts: [(F.Section, Int)] = [
            (F.layers, tree.layers.count), (F.attributes, attributes.count), (F.inodes, order.count),
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

        var bytes = [UInt8](repeating: 0, count: total)
        bytes.withUnsafeMutableBytes { out in
            typealias H = F.Header
            typealias A = F.Attributes
            typealias I = F.Inode
            typealias C = F.Child
            typealias X = F.Extra
            typealias XA = F.Xattr
            typealias S = F.Sparse
            var strings = 0, names = 0
            func string(_ b: UnsafeRawBufferPointer) -> (UInt32, UInt32) {
                let at = strings
                if b.count > 0 { (out.baseAddress! + offStrings + at).copyMemory(from: b.baseAddress!, byteCount: b.count) }
                strings += b.count
                return (UInt32(at), UInt32(b.count))
            }

            out.put(bytes: F.file.magic, 0, H.magic)
            out.put(F.version, 0, H.version)
            for ((section, count), offset) in zip(counts, offsets) {
                out.put(UInt64(offset), 0, section.start)
                if section.count.width == 4 { out.put(UInt32(count), 0, section.count) } else { out.put(UInt64(count), 0, section.count) }
            }
            out.put(UInt64(total), 0, H.totalLength)
            for (i, b) in layers.enumerated() { out[offLayers + i] = b }
            for (i, a) in attributes.enumerated() {
                let r = offAttributes + i * A.size
                out.put(a.mode, r, A.mode); out.put(a.uid, r, A.uid); out.put(a.gid, r, A.gid)
                out.put(a.nanoseconds, r, A.mtimeNanoseconds); out.put(a.seconds, r, A.mtimeSeconds)
            }
            for s in 0..<slotCount { out.put(F.emptySlot, offSlots + s * F.Slot.size, F.Slot.child) }

            var child = 0, extra = 0, xattr = 0, sparse = 0
            for (n, old) in order.enumerated() {
                let r = offInodes + n * I.size
                var data: UInt64 = 0, size: UInt64 = 0
                if let e = entries.entry(of: old) {
                    switch e.kind {
                    case .symlink:
                        let (off, len) = string(e.linkTarget)
                        data = UInt64(off) | UInt64(len) << 32
                        size = UInt64(len)
                    case .characterDevice, .blockDevice: data = DeviceNumber.make(major: e.devMajor, minor: e.devMinor)
                    case .regular, .hardlink: data = e.dataOffset; size = e.size
                    default: break
                    }
                    out.put(tree.sources[Int(old)].layer, r, I.layer)
                    if e.isSparse { out.put(F.flagSparse, r, I.flags) }
                    if e.xattrCount > 0 || e.isSparse {
                        let index = tree.layers[Int(tree.sources[Int(old)].layer)]
                        let x = offExtras + extra * X.size
                        out.put(UInt32(xattr), x, X.xattrFirst)
                        out.put(e.xattrCount, x, X.xattrCount)
                        out.put(UInt32(sparse), x, X.sparseFirst)
                        out.put(e.isSparse ? e.sparseCount : 0, x, X.sparseCount)
                        out.put(e.isSparse ? e.storedSize : e.size, x, X.storedSize)
                        for i in 0..<Int(e.xattrCount) {
                            let xa = index.xattr(Int(e.xattrFirst) + i)
                            let (no, nl) = string(xa.name), (vo, vl) = string(xa.value)
                            let at = offXattrs + xattr * XA.size
                            out.put(no, at, XA.nameOffset); out.put(nl, at, XA.nameLength)
                            out.put(vo, at, XA.valueOffset); out.put(vl, at, XA.valueLength)
                            xattr += 1
                        }
                        if e.isSparse {
                            for i in 0..<Int(e.sparseCount) {
                                let s = index.sparseSegment(Int(e.sparseFirst) + i)
                                out.put(s.offset, offSparse + sparse * S.size, S.offset)
                                out.put(s.length, offSparse + sparse * S.size, S.length)
                                sparse += 1
                            }
                        }
                        out.put(UInt32(extra), r, I.extra)
                        extra += 1
                    } else {
                        out.put(F.noExtra, r, I.extra)
                    }
                } else {
                    out.put(F.noExtra, r, I.extra)
                }
                if tree.isDirectory[Int(old)] {
                    let list = tree.children[Int(old)]
                    data = UInt64(child) | UInt64(list.count) << 32
                    size = UInt64(parentOf[n])   // a directory's size field holds its parent
                    for c in list {
                        let at = offChildren + child * C.size
                        let inode = number[Int(c.inode)]
                        if c.name.count > 0 {
                            (out.baseAddress! + offNames + names).copyMemory(from: c.name.baseAddress!, byteCount: c.name.count)
                        }
                        out.put(inode, at, C.inode); out.put(UInt32(names), at, C.nameStart)
                        names += c.name.count
                        var s = ChildTable.hash(UInt32(n), c.name) & (slotCount - 1)
                        while UnsafeRawBufferPointer(out).u32(offSlots + s * F.Slot.size, F.Slot.child) != F.emptySlot {
                            s = (s + 1) & (slotCount - 1)
                        }
                        out.put(UInt32(child), offSlots + s * F.Slot.size, F.Slot.child)
                        child += 1
                    }
                }
                out.put(attributeOf[n], r, I.attributes)
                out.put(tree.nlink[Int(old)], r, I.nlink)
                out.put(size, r, I.fileSize)
                out.put(data, r, I.data)
            }
            out.put(fileChecksum(UnsafeRawBufferPointer(out), skipping: H.checksum.range), 0, H.checksum)
        }
        return bytes
    }

    /// What inodes share: type and permissions, owner, modification time.
    struct Attributes: Hashable {
        var mode: UInt32, uid: UInt32, gid: UInt32, nanoseconds: UInt32, seconds: Int64

        init(_ e: IndexEntry?) {
            typealias F = MergedTreeFormat
            guard let e else {
                // A directory no layer lists: 0755, 0:0, time 0 (what extractors create).
                self.init(mode: F.typeDirectory | 0o755, uid: 0, gid: 0, nanoseconds: 0, seconds: 0)
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
