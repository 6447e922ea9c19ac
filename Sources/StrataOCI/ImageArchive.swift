#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StrataSystem

/// An uncompressed tar holding an image (`skopeo copy … oci-archive:FILE` or
/// `docker-archive:FILE`, `docker save`): its members are listed once, from their headers
/// alone (pread, data skipped), and blobs are then read in place at their offsets — the
/// archive is never extracted.
public struct ImageArchive: Sendable {
    /// One regular member: where its data starts in the archive file and how long it is.
    public struct Member: Sendable, Hashable {
        public var name: String
        public var offset: UInt64
        public var size: UInt64
    }

    public let path: String
    /// Regular members by normalised name ("blobs/sha256/…", "manifest.json"; no "./").
    public let members: [String: Member]
    /// Symlink members (older `docker save` links a shared layer.tar to another), name → target.
    let links: [String: String]

    /// What kind of file `path` is, for the error that says how to convert it.
    public enum Kind: Sendable { case ociArchive, dockerArchive, notAnImage(String) }

    public init(path: String) throws {
        self.path = path
        (members, links) = try ImageArchive.list(path)
    }

    public var kind: Kind {
        if members["oci-layout"] != nil && members["index.json"] != nil { return .ociArchive }
        if members["manifest.json"] != nil { return .dockerArchive }
        return .notAnImage("a tar archive without oci-layout and index.json (OCI) or manifest.json (docker save)")
    }

    /// The member, or an error naming the archive.
    public func member(_ name: String) throws -> Member {
        var current = ImageArchive.normalized(name)
        for _ in 0..<8 {
            if let m = members[current] { return m }
            guard let target = links[current] else { break }
            // A relative target is relative to the link's directory.
            let dir = current.split(separator: "/").dropLast().map(String.init)
            var parts = target.hasPrefix("/") ? [] : dir
            for part in target.split(separator: "/") {
                if part == ".." { _ = parts.popLast() } else if part != "." { parts.append(String(part)) }
            }
            current = parts.joined(separator: "/")
        }
        throw OCIError("\(path): archive has no member \(name)")
    }

    /// Reads a small member whole (JSON documents).
    public func read(_ member: Member, limit: UInt64 = 64 << 20) throws -> [UInt8] {
        guard member.size <= limit else { throw OCIError("\(path): member \(member.name) is \(member.size) bytes, too large for a JSON document") }
        let fd = try open()
        defer { fd.close() }
        var bytes = [UInt8](repeating: 0, count: Int(member.size))
        let n = try bytes.withUnsafeMutableBytes { try fd.readFully(into: $0, at: member.offset) }
        guard n == bytes.count else {
            throw OCIError("\(path): truncated: member \(member.name) ends after \(n) of its \(member.size) bytes")
        }
        return bytes
    }

    public func open() throws -> FileDescriptor {
        do { return try FileDescriptor.open(path, O_RDONLY) } catch let error as SystemError {
            throw OCIError("\(path): cannot open: \(String(cString: strerror(error.code)))")
        }
    }

    static func normalized(_ name: String) -> String {
        var n = Substring(name)
        while n.hasPrefix("./") { n = n.dropFirst(2) }
        while n.hasPrefix("/") { n = n.dropFirst() }
        return String(n)
    }

    /// Sniffs what a regular file is, for messages about files that are not image archives.
    public static func describe(_ path: String) -> String {
        guard let fd = try? FileDescriptor.open(path, O_RDONLY) else { return "an unreadable file" }
        defer { fd.close() }
        var head = [UInt8](repeating: 0, count: 512)
        let n = (try? head.withUnsafeMutableBytes { try fd.readFully(into: $0, at: 0) }) ?? 0
        if n >= 2 && head[0] == 0x1f && head[1] == 0x8b { return "a gzip-compressed file (decompress it: an image archive must be an uncompressed tar)" }
        if n >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd { return "a zstd-compressed file (decompress it: an image archive must be an uncompressed tar)" }
        if n == 512 && Array(head[257..<262]) == Array("ustar".utf8) { return "a tar archive" }
        return "a file that is not a tar archive"
    }

    /// How to make a layout out of anything skopeo reads, for errors.
    public static let conversionHint = "convert it with `skopeo copy SOURCE oci:DIR:TAG` and use DIR:TAG"

    // MARK: - Listing

    static let block = 512

    /// Walks the headers with pread, skipping data: ustar names (prefix + name), PAX `path` and
    /// `size` records, GNU long names. A header whose checksum is wrong, or a member whose data
    /// runs past the end of the file, is an error naming it (a truncated archive, or a member
    /// that lies about its size so the next header is not where it says).
    static func list(_ path: String) throws -> ([String: Member], [String: String]) {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, O_RDONLY) } catch let error as SystemError {
            throw OCIError("\(path): cannot open: \(String(cString: strerror(error.code)))")
        }
        defer { fd.close() }
        let fileSize = UInt64(try fd.stat().st_size)
        var members: [String: Member] = [:]
        var links: [String: String] = [:]
        var offset: UInt64 = 0
        var header = [UInt8](repeating: 0, count: block)
        var longName: String?
        var paxPath: String?
        var paxSize: UInt64?
        var linkName: String?
        func truncated(_ what: String) -> OCIError {
            OCIError("\(path): truncated archive: \(what) runs past the end of the file (\(fileSize) bytes)")
        }
        while true {
            let n = try header.withUnsafeMutableBytes { try fd.readFully(into: $0, at: offset) }
            if n == 0 && offset > 0 {
                break   // no end-of-archive blocks: tolerated, as tar does
            }
            guard n == block else {
                throw n == 0 ? OCIError("\(path): empty file, not an image archive") : truncated("the header at offset \(offset)")
            }
            if header.allSatisfy({ $0 == 0 }) {
                // End of archive: only zeros may follow. Anything else means a member's size
                // field put the end here by mistake, and members after it would go unseen.
                try checkOnlyZeros(fd, from: offset, fileSize: fileSize, path: path)
                break
            }
            guard checksumMatches(header) else {
                throw OCIError("\(path): not a valid tar archive: bad header checksum at offset \(offset)"
                               + (offset > 0 ? " (the member before it is shorter or longer than its header says?)" : ""))
            }
            let type = header[156]
            guard let headerSize = octal(header[124..<136]) else {
                throw OCIError("\(path): bad size field in the header at offset \(offset)")
            }
            let size = (type == 0x30 || type == 0 || type == 0x37) ? (paxSize ?? headerSize) : headerSize
            let dataOffset = offset + UInt64(block)
            guard dataOffset + size <= fileSize else {
                throw truncated("member \(paxPath ?? longName ?? string(header[0..<100])) (\(size) bytes at offset \(dataOffset))")
            }
            switch type {
            case 0x78, 0x4c, 0x4b:   // 'x' PAX extended header, 'L' GNU long name, 'K' long link name
                guard size <= 1 << 20 else { throw OCIError("\(path): extension header at offset \(offset) is too large") }
                var data = [UInt8](repeating: 0, count: Int(size))
                _ = try data.withUnsafeMutableBytes { try fd.readFully(into: $0, at: dataOffset) }
                if type == 0x4c {
                    longName = string(data[...])
                } else if type == 0x4b {
                    linkName = string(data[...])
                } else {
                    for (key, value) in paxRecords(data) {
                        if key == "path" { paxPath = value }
                        if key == "size" { paxSize = UInt64(value) }
                        if key == "linkpath" { linkName = value }
                    }
                }
            case 0x67:   // 'g' global PAX header: nothing here needs it
                break
            default:
                var name = string(header[0..<100])
                let prefix = string(header[345..<500])
                if Array(header[257..<262]) == Array("ustar".utf8), !prefix.isEmpty { name = prefix + "/" + name }
                name = normalized(paxPath ?? longName ?? name)
                if type == 0x30 || type == 0 || type == 0x37 {
                    members[name] = Member(name: name, offset: dataOffset, size: size)
                } else if type == 0x32 || type == 0x31 {   // symlink, hard link
                    let target = linkName ?? string(header[157..<257])
                    links[name] = type == 0x31 ? "/" + normalized(target) : target   // hard links name from the root
                }
                longName = nil; paxPath = nil; paxSize = nil; linkName = nil
            }
            offset = dataOffset + (size + UInt64(block) - 1) / UInt64(block) * UInt64(block)
        }
        return (members, links)
    }

    static func checkOnlyZeros(_ fd: FileDescriptor, from start: UInt64, fileSize: UInt64, path: String) throws {
        var buffer = [UInt8](repeating: 0, count: 64 << 10)
        var offset = start
        while offset < fileSize {
            let n = try buffer.withUnsafeMutableBytes { try fd.read(into: $0, at: offset) }
            if n == 0 { break }
            if let i = buffer[0..<n].firstIndex(where: { $0 != 0 }) {
                throw OCIError("\(path): not a valid tar archive: data at offset \(offset + UInt64(i)) after the end-of-archive block at \(start) (a member before it is shorter or longer than its header says?)")
            }
            offset += UInt64(n)
        }
    }

    static func checksumMatches(_ h: [UInt8]) -> Bool {
        guard let stored = octal(h[148..<156]) else { return false }
        var sum: UInt64 = 0
        for (i, b) in h.enumerated() { sum += (148..<156).contains(i) ? 0x20 : UInt64(b) }
        return sum == stored
    }

    /// An octal field (NUL or space terminated), or base-256 (high bit set) for large sizes.
    static func octal(_ field: ArraySlice<UInt8>) -> UInt64? {
        if let first = field.first, first & 0x80 != 0 {
            var v: UInt64 = UInt64(first & 0x7f)
            for b in field.dropFirst() {
                guard v < (1 << 55) else { return nil }
                v = v << 8 | UInt64(b)
            }
            return v
        }
        var v: UInt64 = 0
        var seen = false
        for b in field {
            if b == 0 || b == 0x20 { if seen { break } else { continue } }
            guard (0x30...0x37).contains(b), v < (1 << 60) else { return nil }
            v = v * 8 + UInt64(b - 0x30)
            seen = true
        }
        return v
    }

    static func string(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    /// "LEN key=value\n" records.
    static func paxRecords(_ data: [UInt8]) -> [(String, String)] {
        var out: [(String, String)] = []
        var i = 0
        while i < data.count {
            guard let space = data[i...].firstIndex(of: 0x20),
                  let length = Int(String(decoding: data[i..<space], as: UTF8.self)), length > 0,
                  i + length <= data.count else { break }
            let record = data[(space + 1)..<(i + length - 1)]
            if let eq = record.firstIndex(of: 0x3d) {
                out.append((String(decoding: record[..<eq], as: UTF8.self), String(decoding: record[(eq + 1)...], as: UTF8.self)))
            }
            i += length
        }
        return out
    }
}
