#if canImport(Glibc)
import Glibc
#endif
import StrataHash
import StrataSystem

/// Everything the mount tests compare about a directory tree, captured once so that a
/// mounted image and `umoci unpack` of the same image can be compared entry by entry.
///
/// Paths are kept as bytes: layer tars may carry names that are not UTF-8, and a lossy
/// conversion would make two different names compare equal. They are printed lossily.
public struct TreeSnapshot: Sendable {
    /// The attributes `differences` compares; pass some to `ignoring` to leave them out.
    public enum Field: String, CaseIterable, Sendable {
        case type, mode, uid, gid, size
        /// mtime of every entry.
        case mtime
        /// mtime of directories only: a union mount may legitimately not reproduce it.
        case dirMtime
        case content, linkTarget, rdev, xattrs
        /// Link count of every entry.
        case nlink
        /// Link count of directories only (depends on how a filesystem counts subdirectories).
        case dirNlink
        /// Which paths share an inode.
        case hardlinks
    }

    public enum EntryType: String, Sendable {
        case regular, directory, symlink, fifo, socket, charDevice, blockDevice, unknown

        init(mode: UInt32) {
            switch mode & UInt32(S_IFMT) {
            case UInt32(S_IFREG): self = .regular
            case UInt32(S_IFDIR): self = .directory
            case UInt32(S_IFLNK): self = .symlink
            case UInt32(S_IFIFO): self = .fifo
            case UInt32(S_IFSOCK): self = .socket
            case UInt32(S_IFCHR): self = .charDevice
            case UInt32(S_IFBLK): self = .blockDevice
            default: self = .unknown
            }
        }
    }

    public struct Entry: Sendable, Equatable {
        /// Relative to the root, "." for the root itself.
        public var path: [UInt8]
        public var type: EntryType
        /// Permission bits including suid, sgid and sticky.
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        /// Regular files only (0 otherwise): a directory's size is filesystem-specific.
        public var size: UInt64
        public var mtimeSeconds: Int64
        public var mtimeNanoseconds: Int64
        /// Lower-case hex SHA-256 of a regular file's bytes; nil when not hashed.
        public var contentSHA256: String?
        /// Raw bytes of a symlink's target.
        public var linkTarget: [UInt8]?
        /// Character and block devices only.
        public var rdev: UInt64?
        /// Sorted by name; `system.*` and `security.selinux` are left out as host noise.
        public var xattrs: [Xattr]
        public var nlink: UInt64
        /// Only to group hardlinks within this tree; never compared across trees.
        var inode: InodeKey

        public var pathString: String { TreeSnapshot.printable(path) }
    }

    public struct Xattr: Sendable, Equatable {
        public var name: [UInt8]
        public var value: [UInt8]
    }

    struct InodeKey: Hashable, Sendable {
        var device: UInt64
        var inode: UInt64
    }

    public let root: String
    /// Keyed by relative path bytes.
    public let entries: [[UInt8]: Entry]
    /// Sets of two or more paths sharing an inode (non-directories only).
    public let hardlinkGroups: Set<Set<[UInt8]>>

    public var count: Int { entries.count }

    /// Relative paths in byte order, printed lossily.
    public var paths: [String] { sortedPaths(entries.keys).map(TreeSnapshot.printable) }

    public func entry(_ path: String) -> Entry? { entries[Array(path.utf8)] }

    // MARK: - Capture

    /// Walks `root` without following symlinks. `hashContents: false` skips reading file
    /// contents, for trees where only metadata matters.
    public static func capture(root: String, hashContents: Bool = true) throws -> TreeSnapshot {
        var rootBytes = Array(root.utf8)
        while rootBytes.count > 1 && rootBytes.last == UInt8(ascii: "/") { rootBytes.removeLast() }

        var entries: [[UInt8]: Entry] = [:]
        // Depth-first with an explicit stack: image trees can be deep, recursion is not needed.
        var pending: [[UInt8]] = [Array(".".utf8)]
        while let relative = pending.popLast() {
            let absolute = relative == Array(".".utf8) ? rootBytes : join(rootBytes, relative)
            let entry = try captureEntry(absolute: absolute, relative: relative, hashContents: hashContents)
            entries[relative] = entry
            if entry.type == .directory {
                for name in try listDirectory(absolute) {
                    pending.append(relative == Array(".".utf8) ? name : join(relative, name))
                }
            }
        }

        var byInode: [InodeKey: Set<[UInt8]>] = [:]
        for (path, entry) in entries where entry.type != .directory {
            byInode[entry.inode, default: []].insert(path)
        }
        let groups = Set(byInode.values.filter { $0.count > 1 })
        return TreeSnapshot(root: root, entries: entries, hardlinkGroups: groups)
    }

    private static func captureEntry(absolute: [UInt8], relative: [UInt8], hashContents: Bool) throws -> Entry {
        var st = stat()
        if withCPath(absolute, { lstat($0, &st) }) != 0 {
            throw SystemError(code: errno, operation: "lstat", path: printable(absolute))
        }
        let type = EntryType(mode: st.st_mode)
        var entry = Entry(
            path: relative, type: type, mode: st.st_mode & 0o7777, uid: st.st_uid, gid: st.st_gid,
            size: type == .regular ? UInt64(st.st_size) : 0,
            mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: Int64(st.st_mtim.tv_nsec),
            contentSHA256: nil, linkTarget: nil, rdev: nil, xattrs: [],
            nlink: UInt64(st.st_nlink),
            inode: InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino)))
        switch type {
        case .regular where hashContents:
            entry.contentSHA256 = try hashFile(absolute)
        case .symlink:
            entry.linkTarget = try readLink(absolute, sizeHint: Int(st.st_size))
        case .charDevice, .blockDevice:
            entry.rdev = UInt64(st.st_rdev)
        default:
            break
        }
        entry.xattrs = try readXattrs(absolute)
        return entry
    }

    private static func listDirectory(_ path: [UInt8]) throws -> [[UInt8]] {
        guard let dir = withCPath(path, { opendir($0) }) else {
            throw SystemError(code: errno, operation: "opendir", path: printable(path))
        }
        defer { closedir(dir) }
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let item = readdir(dir) else {
                if errno != 0 { throw SystemError(code: errno, operation: "readdir", path: printable(path)) }
                break
            }
            let name = withUnsafeBytes(of: item.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        return names
    }

    private static func hashFile(_ path: [UInt8]) throws -> String {
        // O_NOFOLLOW: the entry was lstat'ed as a regular file; never hash through a link.
        let fd = withCPath(path) { open($0, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) }
        if fd < 0 { throw SystemError(code: errno, operation: "open", path: printable(path)) }
        let file = FileDescriptor(rawValue: fd)
        defer { file.close() }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
        }
        return hasher.finalizeHex()
    }

    private static func readLink(_ path: [UInt8], sizeHint: Int) throws -> [UInt8] {
        // st_size of a symlink is its target length on sane filesystems; grow if it lied.
        var capacity = max(sizeHint + 1, 256)
        while true {
            var buffer = [UInt8](repeating: 0, count: capacity)
            let n = withCPath(path) { p in
                buffer.withUnsafeMutableBytes { readlink(p, $0.baseAddress!.assumingMemoryBound(to: CChar.self), capacity) }
            }
            if n < 0 { throw SystemError(code: errno, operation: "readlink", path: printable(path)) }
            if n < capacity { return Array(buffer[0..<n]) }
            capacity *= 2
        }
    }

    private static func readXattrs(_ path: [UInt8]) throws -> [Xattr] {
        let namesBytes = try readSizedBuffer(operation: "llistxattr", path: path) { p, buf, size in
            LinuxCalls.llistxattr(p, buf, size)
        }
        var result: [Xattr] = []
        for name in namesBytes.split(separator: 0, omittingEmptySubsequences: true) {
            let nameBytes = Array(name)
            if isIgnoredXattr(nameBytes) { continue }
            let value = try readSizedBuffer(operation: "lgetxattr", path: path) { p, buf, size in
                withCPath(nameBytes) { LinuxCalls.lgetxattr(p, $0, buf, size) }
            }
            result.append(Xattr(name: nameBytes, value: value))
        }
        return result.sorted { $0.name.lexicographicallyPrecedes($1.name) }
    }

    private static func isIgnoredXattr(_ name: [UInt8]) -> Bool {
        let text = printable(name)
        return text.hasPrefix("system.") || text == "security.selinux"
    }

    /// An xattr query through `LinuxCalls.sizedXattrQuery`. A filesystem without xattr support
    /// (or an attribute gone in between) yields nothing rather than an error.
    private static func readSizedBuffer(operation: String, path: [UInt8],
                                        _ call: (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int) throws -> [UInt8] {
        try withCPath(path) { p in
            try LinuxCalls.sizedXattrQuery(operation: operation, path: printable(path)) { buffer, size in call(p, buffer, size) }
        } ?? []
    }

    // MARK: - Comparison

    /// One human-readable line per mismatch, `self` being "left"; empty means equal.
    public func differences(from other: TreeSnapshot, ignoring: Set<Field> = []) -> [String] {
        var lines: [String] = []
        let allPaths = sortedPaths(Set(entries.keys).union(other.entries.keys))
        for path in allPaths {
            let name = TreeSnapshot.printable(path)
            switch (entries[path], other.entries[path]) {
            case (nil, _?): lines.append("\(name): only in right")
            case (_?, nil): lines.append("\(name): only in left")
            case let (left?, right?):
                lines += TreeSnapshot.compare(left, right, name: name, ignoring: ignoring)
            case (nil, nil): break
            }
        }
        if !ignoring.contains(.hardlinks) {
            lines += hardlinkDifferences(from: other)
        }
        return lines
    }

    private static func compare(_ l: Entry, _ r: Entry, name: String, ignoring: Set<Field>) -> [String] {
        func wanted(_ field: Field) -> Bool { !ignoring.contains(field) }
        if l.type != r.type {
            // Every other field would differ too: one line says it.
            return wanted(.type) ? ["\(name): type \(l.type.rawValue) != \(r.type.rawValue)"] : []
        }
        var lines: [String] = []
        let isDirectory = l.type == .directory
        if wanted(.mode) && l.mode != r.mode { lines.append("\(name): mode \(octal(l.mode)) != \(octal(r.mode))") }
        if wanted(.uid) && l.uid != r.uid { lines.append("\(name): uid \(l.uid) != \(r.uid)") }
        if wanted(.gid) && l.gid != r.gid { lines.append("\(name): gid \(l.gid) != \(r.gid)") }
        if wanted(.size) && l.size != r.size { lines.append("\(name): size \(l.size) != \(r.size)") }
        if wanted(.mtime) && !(isDirectory && ignoring.contains(.dirMtime))
            && (l.mtimeSeconds, l.mtimeNanoseconds) != (r.mtimeSeconds, r.mtimeNanoseconds) {
            lines.append("\(name): mtime \(time(l)) != \(time(r))")
        }
        if wanted(.content), let lh = l.contentSHA256, let rh = r.contentSHA256, lh != rh {
            lines.append("\(name): content sha256 \(lh) != \(rh)")
        }
        if wanted(.linkTarget) && l.linkTarget != r.linkTarget {
            lines.append("\(name): link target \(printable(l.linkTarget ?? [])) != \(printable(r.linkTarget ?? []))")
        }
        if wanted(.rdev) && l.rdev != r.rdev {
            lines.append("\(name): rdev \(device(l.rdev)) != \(device(r.rdev))")
        }
        if wanted(.nlink) && !(isDirectory && ignoring.contains(.dirNlink)) && l.nlink != r.nlink {
            lines.append("\(name): nlink \(l.nlink) != \(r.nlink)")
        }
        if wanted(.xattrs) { lines += xattrDifferences(l.xattrs, r.xattrs, name: name) }
        return lines
    }

    private static func xattrDifferences(_ left: [Xattr], _ right: [Xattr], name: String) -> [String] {
        var lines: [String] = []
        let l = Dictionary(left.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        let r = Dictionary(right.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
        for key in sortedPaths(Set(l.keys).union(r.keys)) {
            let attr = printable(key)
            switch (l[key], r[key]) {
            case (_?, nil): lines.append("\(name): xattr \(attr) only in left")
            case (nil, _?): lines.append("\(name): xattr \(attr) only in right")
            case let (lv?, rv?) where lv != rv:
                lines.append("\(name): xattr \(attr) \(quoted(lv)) != \(quoted(rv))")
            default: break
            }
        }
        return lines
    }

    /// Inode numbers mean nothing across trees, so hardlinks compare as groups of paths.
    /// Only paths present on both sides count: a missing path is already reported.
    private func hardlinkDifferences(from other: TreeSnapshot) -> [String] {
        let common = Set(entries.keys).intersection(other.entries.keys)
        func restricted(_ groups: Set<Set<[UInt8]>>) -> Set<Set<[UInt8]>> {
            Set(groups.map { $0.intersection(common) }.filter { $0.count > 1 })
        }
        let left = restricted(hardlinkGroups)
        let right = restricted(other.hardlinkGroups)
        func describe(_ group: Set<[UInt8]>) -> String {
            "{" + sortedPaths(group).map(TreeSnapshot.printable).joined(separator: ", ") + "}"
        }
        var lines: [String] = []
        for group in left.subtracting(right) { lines.append("hardlinks \(describe(group)) only in left") }
        for group in right.subtracting(left) { lines.append("hardlinks \(describe(group)) only in right") }
        return lines.sorted()
    }

    // MARK: - Formatting

    /// A readable listing of the whole snapshot, one line per entry, for failure messages.
    public func dump() -> String {
        sortedPaths(entries.keys).map { path -> String in
            let e = entries[path]!
            var line = "\(e.pathString) \(e.type.rawValue) \(TreeSnapshot.octal(e.mode)) \(e.uid):\(e.gid)"
            if e.type == .regular { line += " size=\(e.size)" }
            if let h = e.contentSHA256 { line += " sha256=\(h.prefix(12))" }
            if let t = e.linkTarget { line += " -> \(TreeSnapshot.printable(t))" }
            if e.rdev != nil { line += " rdev=\(TreeSnapshot.device(e.rdev))" }
            line += " nlink=\(e.nlink) mtime=\(TreeSnapshot.time(e))"
            for x in e.xattrs { line += " \(TreeSnapshot.printable(x.name))=\(TreeSnapshot.quoted(x.value))" }
            return line
        }.joined(separator: "\n")
    }

    static func printable(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

    static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    static func time(_ e: Entry) -> String {
        let ns = String(e.mtimeNanoseconds)
        return "\(e.mtimeSeconds).\(String(repeating: "0", count: max(0, 9 - ns.count)))\(ns)"
    }

    /// major:minor with glibc's encoding of dev_t.
    static func device(_ rdev: UInt64?) -> String {
        guard let dev = rdev else { return "none" }
        return "\(DeviceNumber.major(dev)):\(DeviceNumber.minor(dev))"
    }

    /// xattr values are often binary (capabilities, ACLs): printable ones quoted, others in hex.
    static func quoted(_ value: [UInt8]) -> String {
        if value.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) { return "\"\(printable(value))\"" }
        return "0x" + value.map { b in
            let s = String(b, radix: 16)
            return s.count == 1 ? "0" + s : s
        }.joined()
    }
}

// MARK: - Byte path helpers

private func join(_ base: [UInt8], _ name: [UInt8]) -> [UInt8] {
    if base == [UInt8(ascii: "/")] { return base + name }
    return base + [UInt8(ascii: "/")] + name
}

private func sortedPaths<S: Sequence>(_ paths: S) -> [[UInt8]] where S.Element == [UInt8] {
    paths.sorted { $0.lexicographicallyPrecedes($1) }
}

/// Calls `body` with a NUL-terminated copy of a byte path.
func withCPath<R>(_ path: [UInt8], _ body: (UnsafePointer<CChar>) throws -> R) rethrows -> R {
    var terminated = path
    terminated.append(0)
    return try terminated.withUnsafeBufferPointer { buffer in
        try buffer.withMemoryRebound(to: CChar.self) { try body($0.baseAddress!) }
    }
}
