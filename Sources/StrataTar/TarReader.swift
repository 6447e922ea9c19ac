// Streaming pull parser: one pass over the uncompressed tar stream, no seeking.

/// Reads entries from a tar stream. Each `next()` skips whatever the caller left unread of the
/// previous entry's data, so the caller may read data (`readData`) or ignore it.
public final class TarReader {
    /// Bytes of the stream consumed so far. After `next()` returns an entry this is its `dataOffset`.
    public private(set) var offset: UInt64 = 0

    private let source: TarSource
    private var pendingData: UInt64 = 0      // unread stored data of the current entry
    private var pendingSkip: UInt64 = 0      // padding (and ignored payloads) after it
    private var currentPath: [UInt8]?
    private var currentName: String? { currentPath.map { String(decoding: $0, as: UTF8.self) } }
    private var globalRecords: [PaxRecord] = []
    private var finished = false
    private var failure: TarError?           // sticky: after an error the position is meaningless

    /// Extension headers (PAX, GNU long names) are held in memory; bound them.
    static let maxExtensionSize: UInt64 = 8 << 20

    public init(source: TarSource) {
        self.source = source
    }

    /// The next entry, or nil at the end of the archive.
    public func next() throws -> TarEntry? {
        if let failure { throw failure }
        if finished { return nil }
        do {
            try skip(pendingData + pendingSkip)
            pendingData = 0
            pendingSkip = 0
            guard let entry = try readEntry() else {
                finished = true
                return nil
            }
            return entry
        } catch let error as TarError {
            failure = error
            throw error
        }
    }

    /// Reads stored data of the current entry (for a sparse entry: the stored segments,
    /// concatenated). Returns 0 at the end of the entry's data.
    public func readData(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        if let failure { throw failure }
        let want = Int(min(UInt64(buffer.count), pendingData))
        if want == 0 { return 0 }
        let got = try fill(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<want]))
        pendingData -= UInt64(got)
        if got < want {
            let error = TarError(message: "truncated data", offset: offset, entry: currentName)
            failure = error
            throw error
        }
        return got
    }

    // MARK: - Stream primitives

    /// Reads until `buffer` is full or the source ends; advances `offset`.
    private func fill(_ buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        var filled = 0
        while filled < buffer.count {
            let n = try source.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if n <= 0 { break }
            guard n <= buffer.count - filled else {
                throw TarError(message: "source returned more bytes than requested", offset: offset)
            }
            filled += n
        }
        offset += UInt64(filled)
        return filled
    }

    private func skip(_ count: UInt64) throws {
        // The source drops the bytes itself (a decoder only hashes them: no copy into a scratch
        // buffer, which was a tenth of indexing a layer of small files).
        var left = count
        while left > 0 {
            let chunk = Int(min(left, 1 << 30))
            let got = try source.discard(chunk)
            guard got >= 0, got <= chunk else {
                throw TarError(message: "source returned more bytes than requested", offset: offset)
            }
            offset += UInt64(got)
            if got < chunk { throw TarError(message: "truncated data", offset: offset, entry: currentName) }
            left -= UInt64(got)
        }
    }

    /// One block; nil when the stream ends cleanly before it; error when it ends inside it.
    private func readBlock(_ what: String, entry: String? = nil) throws -> [UInt8]? {
        var block = [UInt8](repeating: 0, count: tarBlockSize)
        let got = try block.withUnsafeMutableBytes { try fill($0) }
        if got == 0 { return nil }
        if got < tarBlockSize { throw TarError(message: "truncated \(what)", offset: offset, entry: entry) }
        return block
    }

    /// The payload of an extension header ('x', 'g', 'L', 'K') plus its padding.
    private func readExtensionData(size: UInt64, kind: String, entry: String) throws -> [UInt8] {
        guard size <= TarReader.maxExtensionSize else {
            throw TarError(message: "\(kind) of \(size) bytes is too large", offset: offset, entry: entry)
        }
        var data = [UInt8](repeating: 0, count: Int(size))
        let got = try data.withUnsafeMutableBytes { try fill($0) }
        if got < data.count { throw TarError(message: "truncated \(kind)", offset: offset, entry: entry) }
        try skip(UInt64(TarWriter.padding(for: size)))
        return data
    }

    // MARK: - Entries

    private func readEntry() throws -> TarEntry? {
        var ext = ExtensionState()
        while true {
            let headerOffset = offset
            guard let block = try readBlock("header", entry: ext.pendingName) else {
                if ext.isActive {
                    throw TarError(message: "truncated archive: extension header without its entry", offset: offset, entry: ext.pendingName)
                }
                return nil
            }
            let header = TarHeader(block)
            if header.isZero {
                if ext.isActive {
                    throw TarError(message: "end of archive after an extension header", offset: headerOffset, entry: ext.pendingName)
                }
                // End marker: a second zero block, or the stream simply ends (partially or not).
                var second = [UInt8](repeating: 0, count: tarBlockSize)
                _ = try second.withUnsafeMutableBytes { try fill($0) }
                if second.allSatisfy({ $0 == 0 }) { return nil }
                throw TarError(message: "zero block followed by a non-zero block", offset: headerOffset + UInt64(tarBlockSize))
            }
            guard header.checksumIsValid else {
                throw TarError(message: "bad header checksum", offset: headerOffset, entry: ext.pendingName)
            }
            if ext.firstHeaderOffset == nil { ext.firstHeaderOffset = headerOffset }
            let headerName = String(decoding: header.string(HeaderField.name), as: UTF8.self)
            let name = ext.pendingName ?? headerName
            let rawSize: UInt64
            do {
                rawSize = UInt64(try parseNumeric(block[HeaderField.size], allowNegative: false))
            } catch {
                throw TarError(message: "bad size field", offset: headerOffset, entry: name)
            }

            switch header.typeflag {
            case UInt8(ascii: "x"), UInt8(ascii: "X"):
                // 'X' is the pre-standard Solaris spelling of the same thing.
                let data = try readExtensionData(size: rawSize, kind: "pax header", entry: name)
                do {
                    ext.local += try PaxRecords.parse(data)
                } catch {
                    throw TarError(message: error.message, offset: headerOffset, entry: name)
                }
                if let p = ext.local.last(where: { $0.key == "path" }) {
                    ext.pendingName = String(decoding: p.value, as: UTF8.self)
                }
                ext.isActive = true
            case UInt8(ascii: "g"):
                let data = try readExtensionData(size: rawSize, kind: "pax global header", entry: name)
                let records: [PaxRecord]
                do {
                    records = try PaxRecords.parse(data)
                } catch {
                    throw TarError(message: error.message, offset: headerOffset, entry: name)
                }
                globalRecords += records
                // A global header is not part of the entry that follows it.
                if !ext.isActive { ext.firstHeaderOffset = nil }
            case UInt8(ascii: "L"), UInt8(ascii: "K"):
                let isName = header.typeflag == UInt8(ascii: "L")
                let kind = isName ? "GNU long name" : "GNU long link name"
                var data = try readExtensionData(size: rawSize, kind: kind, entry: name)
                while data.last == 0 { data.removeLast() }
                if data.contains(0) { throw TarError(message: "\(kind) contains NUL", offset: headerOffset, entry: name) }
                if isName {
                    ext.longName = data
                    ext.pendingName = String(decoding: data, as: UTF8.self)
                } else {
                    ext.longLink = data
                }
                ext.isActive = true
            case UInt8(ascii: "V"):
                // Volume label: not a file; drop it and anything that was meant for it.
                try skip(rawSize + UInt64(TarWriter.padding(for: rawSize)))
                ext = ExtensionState()
            case UInt8(ascii: "M"):
                throw TarError(message: "unsupported multi-volume continuation entry", offset: headerOffset, entry: name)
            default:
                return try makeEntry(header: header, headerOffset: ext.firstHeaderOffset ?? headerOffset,
                                     blockOffset: headerOffset, rawSize: rawSize, ext: ext)
            }
        }
    }

    /// What extension headers have said about the entry still to come.
    private struct ExtensionState {
        var local: [PaxRecord] = []
        var longName: [UInt8]?
        var longLink: [UInt8]?
        var pendingName: String?
        var firstHeaderOffset: UInt64?
        var isActive = false
    }

    private func makeEntry(header: TarHeader, headerOffset: UInt64, blockOffset: UInt64,
                           rawSize: UInt64, ext: ExtensionState) throws -> TarEntry {
        let block = header.block
        let magic = header.magic
        let flag = header.typeflag

        // Effective PAX values: globals, then this entry's; an empty value removes the keyword.
        var pax: [String: [UInt8]] = [:]
        var xattrs: [TarXattr] = []
        let records = globalRecords.isEmpty ? ext.local : globalRecords + ext.local
        for r in records {
            if r.key.hasPrefix("SCHILY.xattr.") || r.key.hasPrefix("LIBARCHIVE.xattr.") { continue }
            if r.value.isEmpty { pax[r.key] = nil } else { pax[r.key] = r.value }
        }

        // Path: PAX (or the GNU sparse real name) over GNU long name over the header.
        var path: [UInt8]
        if let p = pax["GNU.sparse.name"] ?? pax["path"] {
            path = p
        } else if let long = ext.longName {
            path = long
        } else {
            path = header.string(HeaderField.name)
            if magic == .ustar {
                let prefix = header.string(HeaderField.prefix)
                if !prefix.isEmpty { path = prefix + [UInt8(ascii: "/")] + path }
            }
        }
        // Only messages need the path as a String: made when one is.
        var name: String { String(decoding: path, as: UTF8.self) }
        currentPath = path
        func fail(_ message: String, at off: UInt64? = nil) -> TarError {
            TarError(message: message, offset: off ?? blockOffset, entry: name)
        }
        if path.isEmpty { throw TarError(message: "empty path", offset: blockOffset) }
        if path.contains(0) { throw fail("path contains NUL") }

        // bsdtar writes each attribute twice, and its SCHILY.xattr key carries the percent-encoded
        // name: the LIBARCHIVE record is authoritative for any name it spells.
        let libarchiveNames = records.isEmpty ? [] : Set(records.compactMap { r in
            r.key.hasPrefix("LIBARCHIVE.xattr.") ? r.key.dropFirst("LIBARCHIVE.xattr.".count) : nil
        })
        for r in records {
            let xname: String
            let value: [UInt8]
            if r.key.hasPrefix("SCHILY.xattr.") {
                if libarchiveNames.contains(r.key.dropFirst("SCHILY.xattr.".count)) { continue }
                xname = String(r.key.dropFirst("SCHILY.xattr.".count))
                value = r.value
            } else if r.key.hasPrefix("LIBARCHIVE.xattr.") {
                guard let decodedName = LibarchiveXattr.percentDecode(Array(r.key.utf8.dropFirst("LIBARCHIVE.xattr.".count))),
                      let decodedValue = LibarchiveXattr.base64Decode(r.value)
                else { throw fail("malformed \(r.key) record") }
                xname = String(decoding: decodedName, as: UTF8.self)
                value = decodedValue
            } else {
                continue
            }
            if xname.isEmpty || xname.contains("\0") { throw fail("invalid xattr name in \(r.key)") }
            // Later records for the same name override, keeping the first-seen position.
            if let i = xattrs.firstIndex(where: { $0.name == xname }) {
                xattrs[i].value = value
            } else {
                xattrs.append(TarXattr(name: xname, value: value))
            }
        }

        // Type.
        var type: TarEntryType
        switch flag {
        case UInt8(ascii: "1"): type = .hardlink
        case UInt8(ascii: "2"): type = .symlink
        case UInt8(ascii: "3"): type = .characterDevice
        case UInt8(ascii: "4"): type = .blockDevice
        case UInt8(ascii: "5"), UInt8(ascii: "D"): type = .directory
        case UInt8(ascii: "6"): type = .fifo
        default: type = .regular   // '0', '\0', '7', 'S' and, as POSIX says, anything unknown
        }
        // Pre-POSIX archives mark directories only by the trailing slash.
        if type == .regular, path.last == UInt8(ascii: "/"),
           flag == 0 || (flag == UInt8(ascii: "0") && magic == .v7) {
            type = .directory
        }

        // Numbers.
        func headerNumber(_ range: Range<Int>, _ field: String, allowNegative: Bool = false) throws -> Int64 {
            do { return try parseNumeric(block[range], allowNegative: allowNegative) } catch {
                throw fail("bad \(field) field")
            }
        }
        func id(_ key: String, _ range: Range<Int>) throws -> UInt32 {
            let value: UInt64
            if let v = pax[key] {
                guard let d = PaxValue.decimal(v) else { throw fail("bad pax \(key) '\(String(decoding: v, as: UTF8.self))'") }
                value = d
            } else {
                value = UInt64(try headerNumber(range, key))
            }
            guard let result = UInt32(exactly: value) else { throw fail("\(key) \(value) does not fit 32 bits") }
            return result
        }
        let mode = UInt32(truncatingIfNeeded: try headerNumber(HeaderField.mode, "mode")) & 0o7777
        let uid = try id("uid", HeaderField.uid)
        let gid = try id("gid", HeaderField.gid)

        var mtimeSeconds: Int64
        var mtimeNanoseconds: UInt32 = 0
        if let v = pax["mtime"] {
            guard let t = PaxValue.time(v) else { throw fail("bad pax mtime '\(String(decoding: v, as: UTF8.self))'") }
            (mtimeSeconds, mtimeNanoseconds) = t
        } else {
            mtimeSeconds = try headerNumber(HeaderField.mtime, "mtime", allowNegative: true)
        }

        var uname = "", gname = ""
        if magic != .v7 {
            uname = String(decoding: header.string(HeaderField.uname), as: UTF8.self)
            gname = String(decoding: header.string(HeaderField.gname), as: UTF8.self)
        }
        if let v = pax["uname"] { uname = String(decoding: v, as: UTF8.self) }
        if let v = pax["gname"] { gname = String(decoding: v, as: UTF8.self) }

        var linkTarget: [UInt8]
        if let v = pax["linkpath"] {
            linkTarget = v
        } else if let long = ext.longLink {
            linkTarget = long
        } else {
            linkTarget = header.string(HeaderField.linkname)
        }
        if linkTarget.contains(0) { throw fail("link target contains NUL") }
        if type != .hardlink && type != .symlink { linkTarget = [] }

        var devMajor: UInt32 = 0, devMinor: UInt32 = 0
        if (type == .characterDevice || type == .blockDevice) && magic != .v7 {
            let ma = try headerNumber(HeaderField.devMajor, "devmajor")
            let mi = try headerNumber(HeaderField.devMinor, "devminor")
            guard let ma32 = UInt32(exactly: ma), let mi32 = UInt32(exactly: mi) else {
                throw fail("device number does not fit 32 bits")
            }
            devMajor = ma32
            devMinor = mi32
        }

        // Stored size: what follows the header(s) in the stream.
        var stored = rawSize
        if let v = pax["size"] {
            guard let d = PaxValue.decimal(v) else { throw fail("bad pax size '\(String(decoding: v, as: UTF8.self))'") }
            stored = d
        }
        // Header-only types carry no data whatever their size field says (as Go's archive/tar,
        // which built most container layers); a GNU dumpdir's listing is skipped.
        var ignoredPayload: UInt64 = 0
        switch type {
        case .regular: break
        case .directory where flag == UInt8(ascii: "D"):
            ignoredPayload = stored
            stored = 0
        default: stored = 0
        }
        let payload = stored + ignoredPayload   // cannot overflow: one of them is zero
        let (afterData, o1) = offset.addingReportingOverflow(payload)
        let (_, o2) = afterData.addingReportingOverflow(UInt64(TarWriter.padding(for: payload)))
        if o1 || o2 { throw fail("size \(payload) overflows the stream offset") }

        var size = stored
        var sparseMap: [SparseSegment]?
        var dataOffset = offset
        if type == .regular {
            if flag == UInt8(ascii: "S") {
                (sparseMap, size) = try readOldGNUSparse(block, name: name, blockOffset: blockOffset)
                dataOffset = offset
            } else if let sparse = try paxSparse(pax: pax, locals: ext.local, stored: &stored, name: name, blockOffset: blockOffset) {
                (sparseMap, size) = sparse
                dataOffset = offset
            }
            if let map = sparseMap {
                switch SparseMap.validate(map, realSize: size, storedSize: stored) {
                case .success(let m): sparseMap = m
                case .failure(let e): throw fail(e.message)
                }
            }
        }

        pendingData = stored
        // A PAX 1.0 map takes whole blocks, so the padding is still that of the full payload.
        pendingSkip = ignoredPayload + UInt64(TarWriter.padding(for: payload))

        return TarEntry(path: path, type: type, mode: mode, uid: uid, gid: gid, uname: uname, gname: gname,
                        size: size, mtimeSeconds: mtimeSeconds, mtimeNanoseconds: mtimeNanoseconds,
                        linkTarget: linkTarget, devMajor: devMajor, devMinor: devMinor, xattrs: xattrs,
                        headerOffset: headerOffset, dataOffset: dataOffset, storedSize: stored, sparseMap: sparseMap)
    }

    // MARK: - Sparse

    /// Old GNU 'S': four map slots in the header, more in chained extension blocks.
    private func readOldGNUSparse(_ block: [UInt8], name: String, blockOffset: UInt64) throws -> ([SparseSegment], UInt64) {
        guard let real = try? parseNumeric(block[HeaderField.gnuRealSize], allowNegative: false) else {
            throw TarError(message: "bad sparse real size field", offset: blockOffset, entry: name)
        }
        var segments: [SparseSegment] = []
        guard SparseMap.parseOldGNU(block, start: HeaderField.gnuSparse, count: 4, into: &segments) != nil else {
            throw TarError(message: "bad sparse map field", offset: blockOffset, entry: name)
        }
        var extended = block[HeaderField.gnuIsExtended] != 0
        while extended {
            let extOffset = offset
            guard let ext = try readBlock("sparse extension header", entry: name) else {
                throw TarError(message: "truncated sparse extension header", offset: offset, entry: name)
            }
            guard SparseMap.parseOldGNU(ext, start: 0, count: 21, into: &segments) != nil else {
                throw TarError(message: "bad sparse map field", offset: extOffset, entry: name)
            }
            extended = ext[504] != 0
        }
        return (segments, UInt64(real))
    }

    /// GNU sparse in PAX records (0.0, 0.1, 1.0). Returns nil when the entry is not sparse.
    /// For 1.0 the map is read from the data area here and `stored` shrinks by its size.
    private func paxSparse(pax: [String: [UInt8]], locals: [PaxRecord], stored: inout UInt64,
                           name: String, blockOffset: UInt64) throws -> ([SparseSegment], UInt64)? {
        func fail(_ message: String) -> TarError { TarError(message: message, offset: blockOffset, entry: name) }
        func number(_ key: String) throws -> UInt64? {
            guard let v = pax[key] else { return nil }
            guard let n = PaxValue.decimal(v) else { throw fail("bad pax \(key)") }
            return n
        }
        let major = try number("GNU.sparse.major")
        let minor = try number("GNU.sparse.minor")
        if major != nil || minor != nil {
            guard major == 1, minor == 0 else {
                throw fail("unsupported GNU sparse version \(major.map(String.init) ?? "?").\(minor.map(String.init) ?? "?")")
            }
            guard let real = try number("GNU.sparse.realsize") ?? number("GNU.sparse.size") else {
                throw fail("sparse entry without GNU.sparse.realsize")
            }
            var parser = SparseMapTextParser(dataSize: stored)
            var mapBytes: UInt64 = 0
            while true {
                guard mapBytes + UInt64(tarBlockSize) <= stored else { throw fail("sparse map runs past the entry's data") }
                guard let block = try readBlock("sparse map", entry: name) else {
                    throw TarError(message: "truncated sparse map", offset: offset, entry: name)
                }
                mapBytes += UInt64(tarBlockSize)
                do {
                    if try parser.feed(block) { break }
                } catch {
                    throw TarError(message: error.message, offset: offset - UInt64(tarBlockSize), entry: name)
                }
            }
            stored -= mapBytes
            return (parser.segments, real)
        }
        if let map = pax["GNU.sparse.map"] {
            guard let segments = SparseMap.parseCommaList(map) else { throw fail("malformed GNU.sparse.map") }
            guard let real = try number("GNU.sparse.size") ?? number("GNU.sparse.realsize") else {
                throw fail("sparse entry without GNU.sparse.size")
            }
            return (segments, real)
        }
        if pax["GNU.sparse.offset"] != nil || pax["GNU.sparse.numblocks"] != nil {
            // 0.0: offset/numbytes pairs repeat, so they are taken in order from the raw records.
            var segments: [SparseSegment] = []
            var pendingOffset: UInt64?
            for r in locals {
                if r.key == "GNU.sparse.offset" {
                    guard pendingOffset == nil, let v = PaxValue.decimal(r.value) else { throw fail("malformed GNU.sparse.offset sequence") }
                    pendingOffset = v
                } else if r.key == "GNU.sparse.numbytes" {
                    guard let off = pendingOffset, let v = PaxValue.decimal(r.value) else { throw fail("malformed GNU.sparse.numbytes sequence") }
                    segments.append(SparseSegment(offset: off, length: v))
                    pendingOffset = nil
                }
            }
            if pendingOffset != nil { throw fail("GNU.sparse.offset without GNU.sparse.numbytes") }
            if let count = try number("GNU.sparse.numblocks"), count != UInt64(segments.count) {
                throw fail("GNU.sparse.numblocks \(count) but \(segments.count) segments")
            }
            guard let real = try number("GNU.sparse.size") ?? number("GNU.sparse.realsize") else {
                throw fail("sparse entry without GNU.sparse.size")
            }
            return (segments, real)
        }
        return nil
    }
}
