#if canImport(Glibc)
import Glibc
#endif
import StrataCodec
import StrataSystem
import StrataTar

/// Writes `LayerItem`s as a PAX tar. Every header field comes from the entry itself (owner,
/// mode, nanosecond mtime, xattrs, device numbers) or is fixed (markers), never from the clock,
/// and names are not looked up (no uname/gname), so equal trees give equal bytes.
struct LayerWriter {
    private let stream: TarStream
    /// First path written for each multiply-linked inode, so later ones become hardlinks.
    private var firstPaths: [InodeKey: [UInt8]] = [:]

    private struct InodeKey: Hashable {
        var device: UInt64
        var inode: UInt64
    }

    init(stream: TarStream) { self.stream = stream }

    mutating func write(_ items: [LayerItem]) throws {
        for item in items { try write(item) }
        try stream.write(TarWriter.endOfArchive)
    }

    private mutating func write(_ item: LayerItem) throws {
        switch item.kind {
        case .whiteout, .opaqueMarker:
            // Empty regular files whose names carry the meaning; fixed metadata.
            try stream.write(try header(TarEntry(path: item.path, type: .regular, mode: 0o644)))
        case .entry(let source, let data):
            try writeEntry(item.path, source: source, data: data)
        }
    }

    private mutating func writeEntry(_ path: [UInt8], source: [UInt8], data: [UInt8]?) throws {
        let st = try Paths.lstatOrThrow(source)
        var entry = TarEntry(path: path, type: .regular, mode: UInt32(st.st_mode) & 0o7777,
                             uid: st.st_uid, gid: st.st_gid,
                             mtimeSeconds: Int64(st.st_mtim.tv_sec), mtimeNanoseconds: UInt32(st.st_mtim.tv_nsec))
        entry.xattrs = try Xattrs.names(source)
            .filter { !$0.hasPrefix(OverlayFormat.privatePrefix) }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            .compactMap { name in try Xattrs.value(source, name).map { TarXattr(name: name, value: $0) } }
        switch st.st_mode & S_IFMT {
        case S_IFDIR:
            entry.type = .directory
            entry.path = path + [UInt8(ascii: "/")]
        case S_IFLNK:
            entry.type = .symlink
            entry.linkTarget = try Paths.readLink(source)
        case S_IFCHR, S_IFBLK:
            entry.type = (st.st_mode & S_IFMT) == S_IFCHR ? .characterDevice : .blockDevice
            entry.devMajor = DeviceNumber.major(UInt64(st.st_rdev))
            entry.devMinor = DeviceNumber.minor(UInt64(st.st_rdev))
        case S_IFIFO:
            entry.type = .fifo
        case S_IFREG:
            if st.st_nlink > 1 {
                let key = InodeKey(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
                if let first = firstPaths[key] {
                    entry.type = .hardlink
                    entry.linkTarget = first
                    break
                }
                firstPaths[key] = path
            }
            try writeFile(entry, from: data ?? source)
            return
        default:
            throw CommitError("\(Paths.printable(source)): file type \(st.st_mode & S_IFMT) cannot be stored in a layer")
        }
        try stream.write(try header(entry))
    }

    /// Header, exactly the size announced, padding. A file that shrinks or grows meanwhile is
    /// an error: the layer would not match what the upper held.
    private func writeFile(_ entry: TarEntry, from file: [UInt8]) throws {
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(Paths.printable(file), O_RDONLY | O_NOFOLLOW)
        } catch {
            throw CommitError("\(Paths.printable(file)): cannot open", wrapping: error)
        }
        defer { fd.close() }
        var entry = entry
        let size = UInt64(try fd.stat().st_size)
        entry.size = size
        try stream.write(try header(entry))
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var done: UInt64 = 0
        while done < size {
            let want = Int(min(UInt64(buffer.count), size - done))
            let n = try buffer.withUnsafeMutableBytes { b in
                try fd.readFully(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]), at: done)
            }
            if n < want { throw CommitError("\(Paths.printable(file)): shrank while being committed") }
            try buffer.withUnsafeBytes { try stream.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            done += UInt64(n)
        }
        var probe: UInt8 = 0
        if try withUnsafeMutableBytes(of: &probe, { try fd.read(into: $0, at: size) }) != 0 {
            throw CommitError("\(Paths.printable(file)): grew while being committed")
        }
        try stream.writeZeros(TarWriter.padding(for: size))
    }

    private func header(_ entry: TarEntry) throws -> [UInt8] {
        do {
            return try TarWriter.header(for: entry, format: .pax)
        } catch {
            throw CommitError("\(entry.pathString): cannot write its tar header: \(error)")
        }
    }

}
