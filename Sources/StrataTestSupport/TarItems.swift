import StrataTar

/// One layer entry and its data, as `TarWriter.archive` and `ImageBuilder.addLayer` take them.
public typealias TarItem = (TarEntry, [UInt8])

/// Short constructors for layer entries. Paths are given as written into the tar (no
/// normalisation: tests of "./a", "a/", "a//b" need the raw spelling).
public enum Items {
    /// A fixed, recognisable mtime: fixtures must be reproducible.
    public static let mtime: Int64 = 1_700_000_000

    public static func file(_ path: String, _ content: String = "", mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                            mtime: Int64 = mtime, nanoseconds: UInt32 = 0, xattrs: [String: [UInt8]] = [:]) -> TarItem {
        file(Array(path.utf8), Array(content.utf8), mode: mode, uid: uid, gid: gid, mtime: mtime,
             nanoseconds: nanoseconds, xattrs: xattrs)
    }

    public static func file(_ path: [UInt8], _ content: [UInt8], mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                            mtime: Int64 = mtime, nanoseconds: UInt32 = 0, xattrs: [String: [UInt8]] = [:]) -> TarItem {
        (TarEntry(path: path, type: .regular, mode: mode, uid: uid, gid: gid, size: UInt64(content.count),
                  mtimeSeconds: mtime, mtimeNanoseconds: nanoseconds, xattrs: sorted(xattrs)), content)
    }

    public static func dir(_ path: String, mode: UInt32 = 0o755, uid: UInt32 = 0, gid: UInt32 = 0,
                           mtime: Int64 = mtime, nanoseconds: UInt32 = 0, xattrs: [String: [UInt8]] = [:]) -> TarItem {
        (TarEntry(path: Array(path.utf8), type: .directory, mode: mode, uid: uid, gid: gid,
                  mtimeSeconds: mtime, mtimeNanoseconds: nanoseconds, xattrs: sorted(xattrs)), [])
    }

    /// `mode`: what the header says; some tar writers put 0644 there (Linux shows 0777 anyway).
    public static func symlink(_ path: String, to target: String, mode: UInt32 = 0o777, uid: UInt32 = 0, gid: UInt32 = 0,
                               mtime: Int64 = mtime) -> TarItem {
        (TarEntry(path: Array(path.utf8), type: .symlink, mode: mode, uid: uid, gid: gid, mtimeSeconds: mtime,
                  linkTarget: Array(target.utf8)), [])
    }

    /// A hardlink: `path` names the same file as `target` (a path of this or a lower layer).
    public static func hardlink(_ path: String, to target: String, mtime: Int64 = mtime) -> TarItem {
        (TarEntry(path: Array(path.utf8), type: .hardlink, mode: 0o644, mtimeSeconds: mtime,
                  linkTarget: Array(target.utf8)), [])
    }

    public static func charDevice(_ path: String, major: UInt32, minor: UInt32, mode: UInt32 = 0o666, mtime: Int64 = mtime) -> TarItem {
        (TarEntry(path: Array(path.utf8), type: .characterDevice, mode: mode, mtimeSeconds: mtime,
                  devMajor: major, devMinor: minor), [])
    }

    public static func blockDevice(_ path: String, major: UInt32, minor: UInt32, mode: UInt32 = 0o660, mtime: Int64 = mtime) -> TarItem {
        (TarEntry(path: Array(path.utf8), type: .blockDevice, mode: mode, mtimeSeconds: mtime,
                  devMajor: major, devMinor: minor), [])
    }

    public static func fifo(_ path: String, mode: UInt32 = 0o644, mtime: Int64 = mtime) -> TarItem {
        (TarEntry(path: Array(path.utf8), type: .fifo, mode: mode, mtimeSeconds: mtime), [])
    }

    /// `DIR/.wh.NAME`: hides DIR/NAME (and its subtree) of lower layers.
    public static func whiteout(_ path: String) -> TarItem { whiteout(Array(path.utf8)) }

    public static func whiteout(_ path: [UInt8]) -> TarItem {
        let slash = path.lastIndex(of: UInt8(ascii: "/"))
        let parent = slash.map { Array(path[...$0]) } ?? []
        let name = slash.map { Array(path[($0 + 1)...]) } ?? path
        return (TarEntry(path: parent + Array(".wh.".utf8) + name, type: .regular, mode: 0o644, mtimeSeconds: mtime), [])
    }

    /// `DIR/.wh..wh..opq`: hides every lower child of DIR.
    public static func opaque(_ directory: String) -> TarItem {
        let prefix = directory.isEmpty || directory.hasSuffix("/") ? directory : directory + "/"
        return (TarEntry(path: Array((prefix + ".wh..wh..opq").utf8), type: .regular, mode: 0o644, mtimeSeconds: mtime), [])
    }

    /// Deterministic, mildly compressible bytes (so several gzip checkpoints are needed).
    /// Bytes that do not compress (deflate stores them): a layer of them has a checkpoint at
    /// the end of the first stored block past each spacing, whatever the search's slices.
    public static func incompressible(count: Int, seed: UInt64 = 1) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return UInt8(truncatingIfNeeded: state >> 24)
        }
    }

    public static func pseudoRandom(count: Int, seed: UInt64 = 1) -> [UInt8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var out = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            // Text-like: a small alphabet compresses about 2:1, like real file data.
            out[i] = UInt8(ascii: "a") + UInt8(truncatingIfNeeded: state % 23)
            if state % 61 == 0 { out[i] = UInt8(ascii: "\n") }
            i += 1
        }
        return out
    }

    private static func sorted(_ xattrs: [String: [UInt8]]) -> [TarXattr] {
        xattrs.keys.sorted().map { TarXattr(name: $0, value: xattrs[$0]!) }
    }
}

/// Tar bytes crafted field by field, for what TarWriter refuses to write (PAX global
/// headers, broken headers, hostile paths).
public enum RawTar {
    /// A 512-byte ustar header with a correct checksum unless `badChecksum`.
    public static func header(name: [UInt8], type: UInt8 = UInt8(ascii: "0"), size: UInt64 = 0, mode: UInt32 = 0o644,
                              mtime: Int64 = Items.mtime, linkname: [UInt8] = [], badChecksum: Bool = false) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 512)
        put(name, &b, 0, 100)
        putOctal(UInt64(mode), &b, 100, 8)
        putOctal(0, &b, 108, 8)
        putOctal(0, &b, 116, 8)
        putOctal(size, &b, 124, 12)
        putOctal(UInt64(mtime), &b, 136, 12)
        b[156] = type
        put(linkname, &b, 157, 100)
        put(Array("ustar\u{0}00".utf8), &b, 257, 8)
        put(Array("root".utf8), &b, 265, 32)
        put(Array("root".utf8), &b, 297, 32)
        for i in 148..<156 { b[i] = UInt8(ascii: " ") }
        var sum = b.reduce(0) { $0 + Int($1) }
        if badChecksum { sum += 1 }
        let digits = Array(String(sum, radix: 8).utf8)
        let field = [UInt8](repeating: UInt8(ascii: "0"), count: 6 - digits.count) + digits + [0, UInt8(ascii: " ")]
        b.replaceSubrange(148..<156, with: field)
        return b
    }

    /// A regular file entry: header, data, padding.
    public static func file(name: [UInt8], data: [UInt8]) -> [UInt8] {
        header(name: name, size: UInt64(data.count)) + padded(data)
    }

    /// A PAX extended ('x') or global ('g') header with its records.
    public static func pax(_ records: [(String, [UInt8])], global: Bool, name: String = "pax") -> [UInt8] {
        var data: [UInt8] = []
        for (key, value) in records {
            let body = Array(" \(key)=".utf8) + value + [UInt8(ascii: "\n")]
            // The length counts its own digits.
            var length = body.count + 1
            while String(length).utf8.count + body.count != length { length += 1 }
            data += Array(String(length).utf8) + body
        }
        return header(name: Array(name.utf8), type: UInt8(ascii: global ? "g" : "x"), size: UInt64(data.count)) + padded(data)
    }

    public static let end = [UInt8](repeating: 0, count: 1024)

    public static func padded(_ data: [UInt8]) -> [UInt8] {
        data + [UInt8](repeating: 0, count: (512 - data.count % 512) % 512)
    }

    private static func put(_ value: [UInt8], _ b: inout [UInt8], _ at: Int, _ width: Int) {
        for (i, byte) in value.prefix(width).enumerated() { b[at + i] = byte }
    }

    private static func putOctal(_ value: UInt64, _ b: inout [UInt8], _ at: Int, _ width: Int) {
        let digits = Array(String(value, radix: 8).utf8)
        put([UInt8](repeating: UInt8(ascii: "0"), count: max(0, width - 1 - digits.count)) + digits + [0], &b, at, width)
    }
}
