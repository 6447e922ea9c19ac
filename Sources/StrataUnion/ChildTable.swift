#if canImport(Glibc)
import Glibc
#endif

/// The (directory inode, name) → child map of the union tree: records (24 bytes, appended in
/// order and never moved, so a record's number names it for good) and an open-addressing table
/// of 4-byte slots holding record numbers (load at most 3/4). Growing rehashes only the slots.
/// Names are not copied: they point into the mapped layer indexes, which outlive the table.
/// A removed name keeps its record (its `position` is `dead`), so probing needs no tombstones
/// and re-adding the same name reuses the record.
final class ChildTable {
    /// 20 bytes: the name's address takes 48 bits (user space addresses fit), split so that
    /// every field is 4-byte aligned.
    struct Record {
        var directory: UInt32
        var nameLow: UInt32
        var nameHighAndLength: UInt32   // address bits 32..47, then the length (16 bits)
        var inode: UInt32
        var position: UInt32       // index in the directory's child list, or `dead`

        init(directory: UInt32, name: UnsafeRawBufferPointer, inode: UInt32, position: UInt32) {
            let address = UInt64(UInt(bitPattern: name.baseAddress))
            precondition(address >> 48 == 0 && name.count <= Int(UInt16.max), "name outside the table's reach")
            self.directory = directory
            nameLow = UInt32(truncatingIfNeeded: address)
            nameHighAndLength = UInt32(truncatingIfNeeded: address >> 32) | UInt32(name.count) << 16
            self.inode = inode
            self.position = position
        }

        @inline(__always) var length: Int { Int(nameHighAndLength >> 16) }
        @inline(__always) var name: UnsafeRawPointer? {
            UnsafeRawPointer(bitPattern: UInt(UInt64(nameLow) | UInt64(nameHighAndLength & 0xFFFF) << 32))
        }
    }

    static let dead = UInt32.max
    private static let emptySlot = UInt32.max

    private var slots: UnsafeMutablePointer<UInt32>
    private var slotCount: Int
    private var mask: Int
    /// Grown by hand (`reserve`) so that a large table is never copied whole while it grows.
    private var records: UnsafeMutablePointer<Record>
    private var recordCapacity: Int
    private(set) var count = 0

    init(expected: Int) {
        var c = 16
        while c * 3 < expected * 4 { c <<= 1 }   // load factor at most 3/4
        slotCount = c
        mask = c - 1
        slots = UnsafeMutablePointer<UInt32>.allocate(capacity: c)
        slots.initialize(repeating: ChildTable.emptySlot, count: c)
        recordCapacity = max(expected, 16)
        records = UnsafeMutablePointer<Record>.allocate(capacity: recordCapacity)
    }

    deinit {
        slots.deallocate()
        records.deallocate()
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

    @inline(__always)
    private func matches(_ r: Int, _ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Bool {
        let record = records[r]
        return record.directory == directory && record.length == name.count
            && (name.count == 0 || memcmp(record.name!, name.baseAddress!, name.count) == 0)
    }

    /// The record holding (directory, name), live or dead; nil if the name was never added.
    @inline(__always)
    func find(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int? {
        if slotCount == 0 { return (0..<count).last { matches($0, directory, name) } }
        var i = ChildTable.hash(directory, name) & mask
        while true {
            let r = slots[i]
            if r == ChildTable.emptySlot { return nil }
            if matches(Int(r), directory, name) { return Int(r) }
            i = (i + 1) & mask
        }
    }

    /// The record for (directory, name), created (dead) if new: one probe sequence either way.
    func slot(_ directory: UInt32, _ name: UnsafeRawBufferPointer) -> Int {
        precondition(slotCount > 0, "a name added after the slots were dropped")
        if (count + 1) * 4 > slotCount * 3 { grow() }
        var i = ChildTable.hash(directory, name) & mask
        while true {
            let r = slots[i]
            if r == ChildTable.emptySlot { break }
            if matches(Int(r), directory, name) { return Int(r) }
            i = (i + 1) & mask
        }
        if count == recordCapacity {
            let bigger = UnsafeMutablePointer<Record>.allocate(capacity: recordCapacity * 2)
            bigger.moveInitialize(from: records, count: count)
            records.deallocate()
            records = bigger
            recordCapacity *= 2
        }
        (records + count).initialize(to: Record(directory: directory, name: name, inode: 0, position: ChildTable.dead))
        slots[i] = UInt32(count)
        count += 1
        return count - 1
    }

    @inline(__always)
    func name(_ slot: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: records[slot].name, count: records[slot].length)
    }

    @inline(__always) func inode(_ slot: Int) -> UInt32 { records[slot].inode }
    @inline(__always) func position(_ slot: Int) -> UInt32 { records[slot].position }
    @inline(__always) func set(_ slot: Int, inode: UInt32, position: UInt32) {
        records[slot].inode = inode
        records[slot].position = position
    }
    @inline(__always) func setPosition(_ slot: Int, _ position: UInt32) { records[slot].position = position }

    /// Frees the slots once no name is added any more (the tree is built): `find` then scans
    /// the records, for the few lookups a caller may still make.
    func dropSlots() {
        slots.deallocate()
        slots = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        slotCount = 0
        mask = 0
    }

    private func grow() {
        slots.deallocate()
        slotCount *= 2
        mask = slotCount - 1
        slots = UnsafeMutablePointer<UInt32>.allocate(capacity: slotCount)
        slots.initialize(repeating: ChildTable.emptySlot, count: slotCount)
        for r in 0..<count {
            let record = records[r]
            var i = ChildTable.hash(record.directory, UnsafeRawBufferPointer(start: record.name, count: record.length)) & mask
            while slots[i] != ChildTable.emptySlot { i = (i + 1) & mask }
            slots[i] = UInt32(r)
        }
    }
}
