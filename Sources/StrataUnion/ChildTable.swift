/// The (directory inode, name) → child map of the union tree: open addressing over one flat
/// array of 24-byte records, so a probe costs one cache line and an entry no allocation.
/// Names are not copied: they point into the mapped layer indexes, which outlive the table.
/// A removed name keeps its record (its `position` is `dead`), so probing needs no tombstones
/// and re-adding the same name reuses the record.
final class ChildTable {
    struct Record {
        var directory: UInt32      // `empty` for a free record
        var length: UInt32
        var name: UnsafeRawPointer?
        var inode: UInt32
        var position: UInt32       // index in the directory's child list, or `dead`
    }

    static let empty = UInt32.max
    static let dead = UInt32.max

    private(set) var capacity: Int
    private(set) var count = 0
    private var mask: Int
    private(set) var records: UnsafeMutablePointer<Record>
    /// After a growth, old slot → new slot, until the owner has renumbered its lists.
    private(set) var remap: UnsafeMutablePointer<UInt32>? = nil

    init(expected: Int) {
        var c = 16
        while c * 3 < expected * 4 { c <<= 1 }   // load factor at most 3/4
        capacity = c
        mask = c - 1
        records = ChildTable.allocate(c)
    }

    deinit {
        records.deallocate()
        remap?.deallocate()
    }

    private static func allocate(_ c: Int) -> UnsafeMutablePointer<Record> {
        let r = UnsafeMutablePointer<Record>.allocate(capacity: c)
        r.initialize(repeating: Record(directory: empty, length: 0, name: nil, inode: 0, position: dead), count: c)
        return r
    }

    /// FNV-1a over the name, mixed with the directory: names are short, so this beats SipHash.
    @inline(__always)
    static func hash(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int {
        var h: UInt32 = 0x811C_9DC5 ^ (directory &* 0x9E37_79B1)
        for byte in name {
            h = (h ^ UInt32(byte)) &* 0x0100_0193
        }
        h ^= h >> 15
        h = h &* 0x2C1B_3C6D
        h ^= h >> 12
        return Int(h)
    }

    /// The slot holding (directory, name), live or dead; nil if the name was never added.
    @inline(__always)
    func find(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int? {
        var i = ChildTable.hash(directory, name) & mask
        while true {
            let r = records[i]
            if r.directory == ChildTable.empty { return nil }
            if r.directory == directory && Int(r.length) == name.count
                && (name.count == 0 || memcmp(r.name!, name.baseAddress!, name.count) == 0) {
                return i
            }
            i = (i + 1) & mask
        }
    }

    /// The slot for (directory, name), created if new: one probe sequence either way.
    func slot(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int {
        if (count + 1) * 4 > capacity * 3 { grow() }
        var i = ChildTable.hash(directory, name) & mask
        while true {
            let r = records[i]
            if r.directory == ChildTable.empty { break }
            if r.directory == directory && Int(r.length) == name.count
                && (name.count == 0 || memcmp(r.name!, name.baseAddress!, name.count) == 0) {
                return i
            }
            i = (i + 1) & mask
        }
        records[i] = Record(directory: directory, length: UInt32(name.count), name: name.baseAddress,
                            inode: 0, position: ChildTable.dead)
        count += 1
        return i
    }

    @inline(__always)
    func name(_ slot: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: records[slot].name, count: Int(records[slot].length))
    }

    @inline(__always) func inode(_ slot: Int) -> UInt32 { records[slot].inode }
    @inline(__always) func position(_ slot: Int) -> UInt32 { records[slot].position }
    @inline(__always) func set(_ slot: Int, inode: UInt32, position: UInt32) {
        records[slot].inode = inode
        records[slot].position = position
    }
    @inline(__always) func setPosition(_ slot: Int, _ position: UInt32) { records[slot].position = position }

    private func grow() {
        let old = records, oldCapacity = capacity
        capacity *= 2
        mask = capacity - 1
        records = ChildTable.allocate(capacity)
        let map = UnsafeMutablePointer<UInt32>.allocate(capacity: oldCapacity)
        for s in 0..<oldCapacity where old[s].directory != ChildTable.empty {
            let r = old[s]
            var i = ChildTable.hash(r.directory, UnsafeRawBufferPointer(start: r.name, count: Int(r.length))) & mask
            while records[i].directory != ChildTable.empty { i = (i + 1) & mask }
            records[i] = r
            map[s] = UInt32(i)
        }
        old.deallocate()
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
