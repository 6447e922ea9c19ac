// Deterministic tar writer: the same entries always produce the same bytes.

public enum TarWriter {
    public enum Format: Sendable {
        case pax, gnu, ustar
    }

    /// Two zero blocks end an archive.
    public static let endOfArchive = [UInt8](repeating: 0, count: 2 * tarBlockSize)

    /// Zero bytes that follow `size` bytes of data to reach a block boundary.
    public static func padding(for size: UInt64) -> Int {
        Int((UInt64(tarBlockSize) - size % UInt64(tarBlockSize)) % UInt64(tarBlockSize))
    }

    /// Header block(s) for `entry`, including any PAX or GNU extension headers before it.
    /// The size field is `entry.size` for regular files and 0 otherwise.
    public static func header(for entry: TarEntry, format: Format = .pax) throws -> [UInt8] {
        try header(for: entry, format: format, offset: 0)
    }

    /// Entries with their data, padding and the end-of-archive marker.
    public static func archive(_ items: [(TarEntry, [UInt8])], format: Format = .pax) throws -> [UInt8] {
        var out: [UInt8] = []
        for (entry, data) in items {
            let expected = entry.type == .regular ? entry.size : 0
            guard UInt64(data.count) == expected else {
                throw TarError(message: "\(data.count) data bytes for an entry of size \(expected)",
                               offset: UInt64(out.count), entry: entry.pathString)
            }
            out += try header(for: entry, format: format, offset: UInt64(out.count))
            out += data
            out += [UInt8](repeating: 0, count: padding(for: UInt64(data.count)))
        }
        return out + endOfArchive
    }

    // MARK: - Implementation

    private static func header(for entry: TarEntry, format: Format, offset: UInt64) throws -> [UInt8] {
        func fail(_ message: String) -> TarError { TarError(message: message, offset: offset, entry: entry.pathString) }
        if entry.path.isEmpty { throw fail("empty path") }
        if entry.path.contains(0) { throw fail("path contains NUL") }
        if entry.linkTarget.contains(0) { throw fail("link target contains NUL") }
        if entry.sparseMap != nil { throw fail("writing sparse entries is not supported") }

        var block = [UInt8](repeating: 0, count: tarBlockSize)
        var records: [PaxRecord] = []
        var extensions: [UInt8] = []

        // Path.
        let split = ustarSplit(entry.path)
        switch format {
        case .pax:
            if let (prefix, name) = split, isASCII(entry.path) {
                writeString(name, into: &block, HeaderField.name)
                writeString(prefix, into: &block, HeaderField.prefix)
            } else {
                records.append(PaxRecord(key: "path", value: entry.path))
                writeString(placeholderName(entry.path), into: &block, HeaderField.name)
            }
        case .ustar:
            guard let (prefix, name) = split else { throw fail("path too long for ustar") }
            writeString(name, into: &block, HeaderField.name)
            writeString(prefix, into: &block, HeaderField.prefix)
        case .gnu:
            if entry.path.count > HeaderField.name.count {
                extensions += gnuLongHeader(type: "L", value: entry.path)
            }
            writeString(entry.path, into: &block, HeaderField.name)
        }

        // Link target (only links have one).
        let link = (entry.type == .hardlink || entry.type == .symlink) ? entry.linkTarget : []
        let linkFits = link.count <= HeaderField.linkname.count
        switch format {
        case .pax:
            if linkFits && isASCII(link) {
                writeString(link, into: &block, HeaderField.linkname)
            } else {
                records.append(PaxRecord(key: "linkpath", value: link))
                writeString(placeholderName(link), into: &block, HeaderField.linkname)
            }
        case .ustar:
            guard linkFits else { throw fail("link target too long for ustar") }
            writeString(link, into: &block, HeaderField.linkname)
        case .gnu:
            if !linkFits { extensions += gnuLongHeader(type: "K", value: link) }
            writeString(link, into: &block, HeaderField.linkname)
        }

        // Numbers: octal when they fit; otherwise a PAX record, GNU base-256, or an error.
        func number(_ value: UInt64, _ range: Range<Int>, key: String?) throws {
            if value <= octalLimit(width: range.count) {
                writeOctal(value, into: &block, range)
                return
            }
            switch format {
            case .pax:
                if let key {
                    records.append(PaxRecord(key: key, value: Array(String(value).utf8)))
                    writeOctal(0, into: &block, range)
                } else {
                    // No standard keyword (device numbers): base-256, which common readers accept.
                    writeBase256(Int64(value), into: &block, range)
                }
            case .gnu:
                writeBase256(Int64(value), into: &block, range)
            case .ustar:
                throw fail("\(key ?? "device number") \(value) does not fit ustar")
            }
        }
        try number(UInt64(entry.mode & 0o7777), HeaderField.mode, key: nil)
        try number(UInt64(entry.uid), HeaderField.uid, key: "uid")
        try number(UInt64(entry.gid), HeaderField.gid, key: "gid")
        let size = entry.type == .regular ? entry.size : 0
        guard size <= UInt64(Int64.max) else { throw fail("size \(size) too large") }
        try number(size, HeaderField.size, key: "size")
        if entry.type == .characterDevice || entry.type == .blockDevice {
            try number(UInt64(entry.devMajor), HeaderField.devMajor, key: nil)
            try number(UInt64(entry.devMinor), HeaderField.devMinor, key: nil)
        } else {
            writeOctal(0, into: &block, HeaderField.devMajor)
            writeOctal(0, into: &block, HeaderField.devMinor)
        }

        // mtime: sub-second precision only survives in PAX (GNU tar drops it the same way).
        let mtimeLimit = Int64(octalLimit(width: HeaderField.mtime.count))
        let mtimeFits = entry.mtimeSeconds >= 0 && entry.mtimeSeconds <= mtimeLimit
        switch format {
        case .pax:
            if !mtimeFits || entry.mtimeNanoseconds != 0 {
                guard entry.mtimeNanoseconds < 1_000_000_000 else { throw fail("mtime nanoseconds out of range") }
                records.append(PaxRecord(key: "mtime", value: Array(PaxValue.formatTime(
                    seconds: entry.mtimeSeconds, nanoseconds: entry.mtimeNanoseconds).utf8)))
            }
            writeOctal(UInt64(min(max(entry.mtimeSeconds, 0), mtimeLimit)), into: &block, HeaderField.mtime)
        case .gnu:
            if mtimeFits {
                writeOctal(UInt64(entry.mtimeSeconds), into: &block, HeaderField.mtime)
            } else {
                writeBase256(entry.mtimeSeconds, into: &block, HeaderField.mtime)
            }
        case .ustar:
            guard mtimeFits else { throw fail("mtime \(entry.mtimeSeconds) does not fit ustar") }
            writeOctal(UInt64(entry.mtimeSeconds), into: &block, HeaderField.mtime)
        }

        // Owner names: 31 bytes plus the NUL the format requires.
        for (value, range, key) in [(entry.uname, HeaderField.uname, "uname"), (entry.gname, HeaderField.gname, "gname")] {
            let bytes = Array(value.utf8)
            if bytes.count < range.count && isASCII(bytes) {
                writeString(bytes, into: &block, range)
            } else if format == .pax {
                records.append(PaxRecord(key: key, value: bytes))
            } else if bytes.count < range.count {
                writeString(bytes, into: &block, range)
            } else {
                throw fail("\(key) '\(value)' too long")
            }
        }

        if !entry.xattrs.isEmpty {
            guard format == .pax else { throw fail("xattrs need the pax format") }
            for x in entry.xattrs {
                if x.name.isEmpty || x.name.contains("=") || x.name.contains("\0") {
                    throw fail("xattr name '\(x.name)' cannot be stored")
                }
                // Later duplicates win, as the reader resolves them.
                records.removeAll { $0.key == "SCHILY.xattr." + x.name }
                records.append(PaxRecord(key: "SCHILY.xattr." + x.name, value: x.value))
            }
        }

        block[HeaderField.typeflag] = typeflag(entry.type)
        writeMagic(format == .gnu ? .gnu : .ustar, into: &block)
        writeChecksum(into: &block)

        if !records.isEmpty {
            let data = PaxRecords.encode(records)
            var x = [UInt8](repeating: 0, count: tarBlockSize)
            writeString(Array("PaxHeaders/".utf8) + placeholderName(lastComponent(entry.path)), into: &x, HeaderField.name)
            writeOctal(0o644, into: &x, HeaderField.mode)
            writeOctal(0, into: &x, HeaderField.uid)
            writeOctal(0, into: &x, HeaderField.gid)
            writeOctal(UInt64(data.count), into: &x, HeaderField.size)
            writeOctal(0, into: &x, HeaderField.mtime)
            x[HeaderField.typeflag] = UInt8(ascii: "x")
            writeMagic(.ustar, into: &x)
            writeChecksum(into: &x)
            extensions += x + data + [UInt8](repeating: 0, count: padding(for: UInt64(data.count)))
        }
        return extensions + block
    }

    private static func typeflag(_ type: TarEntryType) -> UInt8 {
        switch type {
        case .regular: UInt8(ascii: "0")
        case .hardlink: UInt8(ascii: "1")
        case .symlink: UInt8(ascii: "2")
        case .characterDevice: UInt8(ascii: "3")
        case .blockDevice: UInt8(ascii: "4")
        case .directory: UInt8(ascii: "5")
        case .fifo: UInt8(ascii: "6")
        }
    }

    private static func writeMagic(_ magic: HeaderMagic, into block: inout [UInt8]) {
        switch magic {
        case .gnu: writeString(Array("ustar  \0".utf8), into: &block, 257..<265)
        default: writeString(Array("ustar\u{0}00".utf8), into: &block, 257..<265)
        }
    }

    /// GNU 'L'/'K' header: the name as data, NUL-terminated, under the conventional name.
    private static func gnuLongHeader(type: Character, value: [UInt8]) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: tarBlockSize)
        let data = value + [0]
        writeString(Array("././@LongLink".utf8), into: &h, HeaderField.name)
        writeOctal(0o644, into: &h, HeaderField.mode)
        writeOctal(0, into: &h, HeaderField.uid)
        writeOctal(0, into: &h, HeaderField.gid)
        writeOctal(UInt64(data.count), into: &h, HeaderField.size)
        writeOctal(0, into: &h, HeaderField.mtime)
        h[HeaderField.typeflag] = type.asciiValue ?? UInt8(ascii: "L")
        writeMagic(.gnu, into: &h)
        writeChecksum(into: &h)
        return h + data + [UInt8](repeating: 0, count: padding(for: UInt64(data.count)))
    }

    /// ustar (prefix, name) split: name ≤ 100 bytes, prefix ≤ 155, joined by a '/'.
    static func ustarSplit(_ path: [UInt8]) -> ([UInt8], [UInt8])? {
        if path.count <= HeaderField.name.count { return ([], path) }
        // The latest usable slash keeps the name shortest.
        var i = min(path.count - 2, HeaderField.prefix.count)
        while i > 0 {
            if path[i] == UInt8(ascii: "/") {
                if path.count - i - 1 > HeaderField.name.count { return nil }
                return (Array(path[..<i]), Array(path[(i + 1)...]))
            }
            i -= 1
        }
        return nil
    }

    private static func isASCII(_ bytes: [UInt8]) -> Bool { bytes.allSatisfy { $0 < 0x80 } }

    /// What old readers see when the real value is in a PAX record: ASCII, truncated.
    private static func placeholderName(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytes.map { $0 < 0x80 ? $0 : UInt8(ascii: "_") }.prefix(HeaderField.name.count))
    }

    private static func lastComponent(_ path: [UInt8]) -> [UInt8] {
        let trimmed = path.last == UInt8(ascii: "/") ? Array(path.dropLast()) : path
        if let slash = trimmed.lastIndex(of: UInt8(ascii: "/")) { return Array(trimmed[(slash + 1)...]) }
        return trimmed
    }
}
