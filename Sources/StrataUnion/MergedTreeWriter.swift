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
        out.reserveCapacity(layers.count * MergedTreeFormat.layerSize)
        for layer in layers {
            var hex = Array(layer.digestHex.utf8)
            hex += [UInt8](repeating: 0, count: max(0, 64 - hex.count))
            out += hex.prefix(64)
            withUnsafeBytes(of: layer.uncompressedSize.littleEndian) { out += $0 }
            withUnsafeBytes(of: layer.checksum.littleEndian) { out += $0 }
        }
        return out
    }

    public static func serialize(_ tree: UnionTree) -> [UInt8] {
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
            if let e = tree.entry(of: old) {
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
            let a = Attributes(tree.entry(of: old))
            if let k = attributeNumber[a] { attributeOf[n] = k; continue }
            attributeNumber[a] = UInt32(attributes.count)
            attributeOf[n] = UInt32(attributes.count)
            attributes.append(a)
        }

        let layers = layerTable(tree.layers)
        let slotCount = F.slotCount(children: childCount)
        let offLayers = F.headerSize
        let offAttributes = offLayers + layers.count
        let offInodes = offAttributes + attributes.count * F.attributeSize
        let offChildren = offInodes + order.count * F.inodeSize
        let offSlots = offChildren + childCount * F.childSize
        let offExtras = offSlots + slotCount * F.slotSize
        let offXattrs = offExtras + extraCount * F.extraSize
        let offSparse = offXattrs + xattrCount * F.xattrSize
        let offNames = offSparse + sparseCount * F.sparseSize
        let offStrings = offNames + namesLength
        let total = offStrings + stringsLength

        var bytes = [UInt8](repeating: 0, count: total)
        bytes.withUnsafeMutableBytes { out in
            func put32(_ v: UInt32, _ at: Int) { out.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt32.self) }
            func put64(_ v: UInt64, _ at: Int) { out.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt64.self) }
            func put16(_ v: UInt16, _ at: Int) { out.storeBytes(of: v.littleEndian, toByteOffset: at, as: UInt16.self) }
            var strings = 0, names = 0
            func string(_ b: UnsafeRawBufferPointer) -> (UInt32, UInt32) {
                let at = strings
                if b.count > 0 { (out.baseAddress! + offStrings + at).copyMemory(from: b.baseAddress!, byteCount: b.count) }
                strings += b.count
                return (UInt32(at), UInt32(b.count))
            }

            for (i, b) in F.magic.enumerated() { out[i] = b }
            put32(F.version, F.offVersion)
            put32(UInt32(tree.layers.count), F.offLayerCount)
            put32(UInt32(order.count), F.offInodeCount)
            put32(UInt32(childCount), F.offChildCount)
            put32(UInt32(slotCount), F.offSlotCount)
            put32(UInt32(extraCount), F.offExtraCount)
            put32(UInt32(xattrCount), F.offXattrCount)
            put32(UInt32(sparseCount), F.offSparseCount)
            put64(UInt64(offLayers), F.offLayers)
            put64(UInt64(offInodes), F.offInodes)
            put64(UInt64(offChildren), F.offChildren)
            put64(UInt64(offSlots), F.offSlots)
            put64(UInt64(offExtras), F.offExtras)
            put64(UInt64(offXattrs), F.offXattrs)
            put64(UInt64(offSparse), F.offSparse)
            put64(UInt64(offStrings), F.offStrings)
            put64(UInt64(stringsLength), F.offStringsLength)
            put64(UInt64(total), F.offTotalLength)
            put64(UInt64(offNames), F.offNames)
            put64(UInt64(namesLength), F.offNamesLength)
            put32(UInt32(attributes.count), F.offAttributeCount)
            put64(UInt64(offAttributes), F.offAttributes)
            for (i, b) in layers.enumerated() { out[offLayers + i] = b }
            for (i, a) in attributes.enumerated() {
                let r = offAttributes + i * F.attributeSize
                put32(a.mode, r + F.aMode); put32(a.uid, r + F.aUid); put32(a.gid, r + F.aGid)
                put32(a.nanoseconds, r + F.aMtimeNsec); put64(UInt64(bitPattern: a.seconds), r + F.aMtime)
            }
            for s in 0..<slotCount { put32(F.emptySlot, offSlots + s * F.slotSize) }

            var child = 0, extra = 0, xattr = 0, sparse = 0
            for (n, old) in order.enumerated() {
                let r = offInodes + n * F.inodeSize
                var data: UInt64 = 0, size: UInt64 = 0
                if let e = tree.entry(of: old) {
                    switch e.kind {
                    case .symlink:
                        let (off, len) = string(e.linkTarget)
                        data = UInt64(off) | UInt64(len) << 32
                        size = UInt64(len)
                    case .characterDevice, .blockDevice: data = DeviceNumber.make(major: e.devMajor, minor: e.devMinor)
                    case .regular, .hardlink: data = e.dataOffset; size = e.size
                    default: break
                    }
                    put16(tree.sources[Int(old)].layer, r + F.iLayer)
                    if e.isSparse { out[r + F.iFlags] = F.flagSparse }
                    if e.xattrCount > 0 || e.isSparse {
                        let index = tree.layers[Int(tree.sources[Int(old)].layer)]
                        let x = offExtras + extra * F.extraSize
                        put32(UInt32(xattr), x)
                        put32(e.xattrCount, x + 4)
                        put32(UInt32(sparse), x + 8)
                        put32(e.isSparse ? e.sparseCount : 0, x + 12)
                        put64(e.isSparse ? e.storedSize : e.size, x + 16)
                        for i in 0..<Int(e.xattrCount) {
                            let xa = index.xattr(Int(e.xattrFirst) + i)
                            let (no, nl) = string(xa.name), (vo, vl) = string(xa.value)
                            let at = offXattrs + xattr * F.xattrSize
                            put32(no, at); put32(nl, at + 4); put32(vo, at + 8); put32(vl, at + 12)
                            xattr += 1
                        }
                        if e.isSparse {
                            for i in 0..<Int(e.sparseCount) {
                                let s = index.sparseSegment(Int(e.sparseFirst) + i)
                                put64(s.offset, offSparse + sparse * F.sparseSize)
                                put64(s.length, offSparse + sparse * F.sparseSize + 8)
                                sparse += 1
                            }
                        }
                        put32(UInt32(extra), r + F.iExtra)
                        extra += 1
                    } else {
                        put32(F.noExtra, r + F.iExtra)
                    }
                } else {
                    put32(F.noExtra, r + F.iExtra)
                }
                if tree.isDirectory[Int(old)] {
                    let list = tree.children[Int(old)]
                    data = UInt64(child) | UInt64(list.count) << 32
                    size = UInt64(parentOf[n])   // a directory's size field holds its parent
                    for c in list {
                        let at = offChildren + child * F.childSize
                        let inode = number[Int(c.inode)]
                        if c.name.count > 0 {
                            (out.baseAddress! + offNames + names).copyMemory(from: c.name.baseAddress!, byteCount: c.name.count)
                        }
                        put32(inode, at); put32(UInt32(names), at + 4)
                        names += c.name.count
                        var s = ChildTable.hash(UInt32(n), c.name) & (slotCount - 1)
                        while out.load(fromByteOffset: offSlots + s * F.slotSize, as: UInt32.self) != F.emptySlot {
                            s = (s + 1) & (slotCount - 1)
                        }
                        put32(UInt32(child), offSlots + s * F.slotSize)
                        child += 1
                    }
                }
                put32(attributeOf[n], r + F.iAttributes)
                put32(tree.nlink[Int(old)], r + F.iNlink)
                put64(size, r + F.iSize)
                put64(data, r + F.iData)
            }
            put64(fileChecksum(UnsafeRawBufferPointer(out), skipping: F.offChecksum..<(F.offChecksum + 8)), F.offChecksum)
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
