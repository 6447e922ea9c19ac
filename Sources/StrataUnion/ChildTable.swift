/// The (directory inode, name) → child map of the union tree: open addressing over flat arrays,
/// so a lookup hashes the name once and touches a few cache lines, with no allocation per entry.
/// Names are not copied: they point into the mapped layer indexes, which outlive the table.
/// A removed name keeps its slot (its `position` is `dead`), so probing never needs tombstones
/// and re-adding the same name reuses the slot.
final class ChildTable {
    static let empty = UInt32.max
    static let dead = UInt32.max

    private(set) var capacity: Int
    private(set) var count = 0
    private var mask: Int
    private(set) var directories: UnsafeMutablePointer<UInt32>
    private(set) var names: UnsafeMutablePointer<UnsafeRawPointer?>
    private(set) var lengths: UnsafeMutablePointer<UInt32>
    private(set) var hashes: UnsafeMutablePointer<UInt32>
    /// The child's inode.
    var inodes: UnsafeMutablePointer<UInt32>
    /// Index of the slot in its directory's child list, or `dead` once hidden or replaced.
    var positions: UnsafeMutablePointer<UInt32>

    init(expected: Int) {
        var c = 16
        while c < expected + expected / 2 { c <<= 1 }
        capacity = c
        mask = c - 1
        (directories, names, lengths, hashes, inodes, positions) = ChildTable.allocate(c)
    }

    deinit { free() }

    private static func allocate(_ c: Int) -> (UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UnsafeRawPointer?>,
                                               UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>,
                                               UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<UInt32>) {
        let d = UnsafeMutablePointer<UInt32>.allocate(capacity: c)
        d.initialize(repeating: empty, count: c)
        let n = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: c)
        n.initialize(repeating: nil, count: c)
        let l = UnsafeMutablePointer<UInt32>.allocate(capacity: c)
        l.initialize(repeating: 0, count: c)
        let h = UnsafeMutablePointer<UInt32>.allocate(capacity: c)
        h.initialize(repeating: 0, count: c)
        let i = UnsafeMutablePointer<UInt32>.allocate(capacity: c)
        i.initialize(repeating: 0, count: c)
        let p = UnsafeMutablePointer<UInt32>.allocate(capacity: c)
        p.initialize(repeating: dead, count: c)
        return (d, n, l, h, i, p)
    }

    private func free() {
        directories.deallocate(); names.deallocate(); lengths.deallocate()
        hashes.deallocate(); inodes.deallocate(); positions.deallocate()
    }

    /// FNV-1a over the name, mixed with the directory: names are short, so this beats SipHash.
    @inline(__always)
    static func hash(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> UInt32 {
        var h: UInt32 = 0x811C_9DC5 ^ (directory &* 0x9E37_79B1)
        for byte in name {
            h = (h ^ UInt32(byte)) &* 0x0100_0193
        }
        h ^= h >> 15
        h = h &* 0x2C1B_3C6D
        h ^= h >> 12
        return h
    }

    /// The slot holding (directory, name), live or dead; nil if the name was never added.
    @inline(__always)
    func find(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int? {
        let h = ChildTable.hash(directory, name)
        var i = Int(h) & mask
        while true {
            let d = directories[i]
            if d == ChildTable.empty { return nil }
            if d == directory && hashes[i] == h && Int(lengths[i]) == name.count && same(names[i], name) { return i }
            i = (i + 1) & mask
        }
    }

    /// The slot for (directory, name), created if new.
    func slot(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int {
        if let found = find(directory, name) { return found }
        if (count + 1) * 4 > capacity * 3 { grow() }
        let h = ChildTable.hash(directory, name)
        var i = Int(h) & mask
        while directories[i] != ChildTable.empty { i = (i + 1) & mask }
        directories[i] = directory
        names[i] = name.baseAddress
        lengths[i] = UInt32(name.count)
        hashes[i] = h
        count += 1
        return i
    }

    @inline(__always)
    func name(_ slot: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: names[slot], count: Int(lengths[slot]))
    }

    @inline(__always)
    private func same(_ stored: UnsafeRawPointer?, _ name: UnsafeRawBufferPointer) -> Bool {
        guard name.count > 0 else { return true }
        return memcmp(stored!, name.baseAddress!, name.count) == 0
    }

    /// Slots move when the table grows: callers holding slot numbers get them remapped.
    private(set) var remap: UnsafeMutablePointer<UInt32>? = nil

    private func grow() {
        let old = (directories, names, lengths, hashes, inodes, positions, capacity)
        capacity *= 2
        mask = capacity - 1
        (directories, names, lengths, hashes, inodes, positions) = ChildTable.allocate(capacity)
        let map = UnsafeMutablePointer<UInt32>.allocate(capacity: old.6)
        for s in 0..<old.6 where old.0[s] != ChildTable.empty {
            var i = Int(old.3[s]) & mask
            while directories[i] != ChildTable.empty { i = (i + 1) & mask }
            directories[i] = old.0[s]; names[i] = old.1[s]; lengths[i] = old.2[s]
            hashes[i] = old.3[s]; inodes[i] = old.4[s]; positions[i] = old.5[s]
            map[s] = UInt32(i)
        }
        old.0.deallocate(); old.1.deallocate(); old.2.deallocate()
        old.3.deallocate(); old.4.deallocate(); old.5.deallocate()
        remap?.deallocate()
        remap = map
    }

    func clearRemap() {
        remap?.deallocate()
        remap = nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
