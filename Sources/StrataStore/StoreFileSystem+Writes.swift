import StrataFS
import StrataOCI
import StrataRegistry
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The writes of the store: c/storage's use and release notifications (answered ENOENT, as it
/// expects, and counted) and nothing else (EROFS).
extension StoreFileSystem {
    /// How many times c/storage acquired the slot's layer and has not released it.
    public func uses(reference: RegistryReference, digest: Digest) -> Int {
        state.withLock { s in
            guard let r = s.referenceNumbers[reference], let slot = s.slotNumbers[SlotKey(reference: r, digest: digest)] else { return 0 }
            return s.slots[Int(slot)].uses
        }
    }

    public func create(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, flags: Int32,
                       context: RequestContext) throws(FSError) -> (attributes: NodeAttributes, handle: UInt64) {
        guard case .layerDirectory(let slot) = try node(parent), name.elementsEqual("use".utf8) else { throw FSError(EROFS) }
        let (count, description) = state.withLock { s in
            s.slots[Int(slot)].uses += 1
            return (s.slots[Int(slot)].uses, "\(s.references[s.slots[Int(slot)].reference]) layer \(s.slots[Int(slot)].layer.digest)")
        }
        Log.info("use: \(description): \(count) in use")
        // "Acquired": c/storage expects exactly ENOENT (anything else: "GC doesn't seem to be supported").
        throw FSError(ENOENT)
    }

    public func rmdir(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) {
        guard case .reference(let r) = try node(parent) else { throw FSError(EROFS) }
        if let digest = StoreName.digest(Array(name)) {
            let released: (Int, String)? = state.withLock { s in
                guard let slot = s.slotNumbers[SlotKey(reference: r, digest: digest)] else { return nil }
                s.slots[Int(slot)].uses = max(0, s.slots[Int(slot)].uses - 1)
                return (s.slots[Int(slot)].uses, "\(s.references[r]) layer \(digest)")
            }
            if let (count, description) = released { Log.info("release: \(description): \(count) in use") }
        }
        // "Released": answered ENOENT, as c/storage expects; the directory stays.
        throw FSError(ENOENT)
    }

    public func mknod(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32, rdev: UInt64,
                      context: RequestContext) throws(FSError) -> NodeAttributes { throw FSError(EROFS) }
    public func mkdir(parent: UInt64, name: UnsafeRawBufferPointer, mode: UInt32,
                      context: RequestContext) throws(FSError) -> NodeAttributes { throw FSError(EROFS) }
    public func symlink(parent: UInt64, name: UnsafeRawBufferPointer, target: UnsafeRawBufferPointer,
                        context: RequestContext) throws(FSError) -> NodeAttributes { throw FSError(EROFS) }
    public func link(inode: UInt64, newParent: UInt64, newName: UnsafeRawBufferPointer) throws(FSError) -> NodeAttributes {
        throw FSError(EROFS)
    }
    public func unlink(parent: UInt64, name: UnsafeRawBufferPointer) throws(FSError) { throw FSError(EROFS) }
    public func rename(parent: UInt64, name: UnsafeRawBufferPointer, newParent: UInt64,
                       newName: UnsafeRawBufferPointer, flags: UInt32) throws(FSError) { throw FSError(EROFS) }
    public func write(inode: UInt64, handle: UInt64, offset: UInt64, data: UnsafeRawBufferPointer) throws(FSError) -> Int {
        throw FSError(EROFS)
    }
    public func setattr(inode: UInt64, handle: UInt64?, changes: AttributeChanges,
                        context: RequestContext) throws(FSError) -> NodeAttributes { throw FSError(EROFS) }
    public func fallocate(inode: UInt64, handle: UInt64, mode: Int32, offset: UInt64, length: UInt64) throws(FSError) {
        throw FSError(EROFS)
    }
    public func setxattr(inode: UInt64, name: String, value: UnsafeRawBufferPointer, flags: Int32) throws(FSError) {
        throw FSError(EROFS)
    }
    public func removexattr(inode: UInt64, name: String) throws(FSError) { throw FSError(EROFS) }
    public func flush(inode: UInt64, handle: UInt64) throws(FSError) {}
    public func fsync(inode: UInt64, handle: UInt64, dataOnly: Bool) throws(FSError) {}
    public func fsyncdir(inode: UInt64, handle: UInt64, dataOnly: Bool) throws(FSError) {}
}
