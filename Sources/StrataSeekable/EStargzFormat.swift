#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// eStargz (stargz-snapshotter `docs/estargz.md`, `estargz/types.go`): a gzip tar in which every
/// regular file's data (and each chunk of a large one) starts a new gzip member, the last tar
/// entry `stargz.index.json` holds the TOC JSON in a member of its own, and an empty gzip member
/// (the footer) whose extra field points at that TOC member ends the blob. Still a valid tar+gzip.
public enum EStargz {
    /// Name of the tar entry holding the TOC JSON, the last entry of the stream.
    public static let tocTarName = "stargz.index.json"
    /// A 1-byte regular file (`landmarkContents`) that ends the prioritized files at the blob's front.
    public static let prefetchLandmark = ".prefetch.landmark"
    /// Says the blob has no prioritized files.
    public static let noPrefetchLandmark = ".no.prefetch.landmark"
    public static let landmarkContents: UInt8 = 0x0f

    /// Layer annotation: sha256 of the uncompressed TOC JSON ("sha256:…"). Trust comes from it.
    public static let tocDigestAnnotation = "containerd.io/snapshot/stargz/toc.digest"
    /// Layer annotation: size of the uncompressed tar (including the TOC entry), decimal.
    public static let uncompressedSizeAnnotation = "io.containers.estargz.uncompressed-size"
    /// Layer annotation for advanced features (external TOC); Strata neither writes nor needs it.
    public static let featureAnnotation = "containerd.io/snapshot/stargz/feature"

    /// Large files are cut into chunks of this many uncompressed bytes (`Writer.chunkSize()` default).
    public static let defaultChunkSize = 4 << 20
    /// The TOC JSON `version`.
    public static let tocVersion = 1
}

/// The footer: an empty gzip member (stored deflate block, CRC and ISIZE zero) whose FEXTRA field
/// carries the TOC member's offset.
///
/// 51 bytes (eStargz):
///     0  10  gzip header 1f 8b 08 04 00000000 00 ff  (FLG = FEXTRA, MTIME 0, XFL 0, OS 255)
///    10   2  XLEN = 26 (LE)
///    12   2  SI1 SI2 = 'S' 'G'
///    14   2  LEN = 22 (LE)
///    16  16  TOC offset, "%016x"
///    32   6  "STARGZ"
///    38   5  empty final stored block 01 00 00 ff ff
///    43   8  CRC32 = 0, ISIZE = 0
/// 47 bytes (legacy CRFS stargz): the same without the 4-byte subfield header, so XLEN = 22 and the
/// extra field is just "%016xSTARGZ".
public struct EStargzFooter: Sendable, Equatable {
    public enum Kind: Sendable, Equatable { case estargz, legacy }
    public var tocOffset: UInt64
    public var kind: Kind

    public static let size = 51
    public static let legacySize = 47
    /// Read this many bytes from the end of a blob to find either footer.
    public static let maxSize = 51

    public init(tocOffset: UInt64, kind: Kind = .estargz) {
        self.tocOffset = tocOffset; self.kind = kind
    }

    /// Bytes the footer takes at the end of the blob.
    public var encodedSize: Int { kind == .estargz ? Self.size : Self.legacySize }

    public func encoded() -> [UInt8] {
        var hex = Array(String(tocOffset, radix: 16).utf8)
        hex = [UInt8](repeating: 0x30, count: max(0, 16 - hex.count)) + hex
        let payload = hex + Array("STARGZ".utf8)                       // 22 bytes
        let extra: [UInt8] = kind == .estargz ? [0x53, 0x47, 22, 0] + payload : payload
        var out: [UInt8] = [0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0x00, 0xff]
        out += [UInt8(extra.count), 0] + extra
        out += [0x01, 0x00, 0x00, 0xff, 0xff]                            // final stored block, length 0
        out += [UInt8](repeating: 0, count: 8)                            // CRC32 and ISIZE of nothing
        return out
    }

    /// Decodes the footer from the last bytes of a blob (`tail`, at least 47 bytes; 51 to try both):
    /// the 51-byte form first, then the legacy 47-byte one, as stargz-snapshotter does.
    public static func decode(tail: [UInt8]) throws -> EStargzFooter {
        var reasons: [String] = []
        if tail.count >= size {
            switch parse(Array(tail.suffix(size)), legacy: false) {
            case .success(let offset): return EStargzFooter(tocOffset: offset, kind: .estargz)
            case .failure(let error): reasons.append(error.message)
            }
        } else {
            reasons.append("fewer than \(size) bytes")
        }
        if tail.count >= legacySize {
            switch parse(Array(tail.suffix(legacySize)), legacy: true) {
            case .success(let offset): return EStargzFooter(tocOffset: offset, kind: .legacy)
            case .failure(let error): reasons.append("legacy: " + error.message)
            }
        }
        throw SeekableError("no eStargz footer (\(reasons.joined(separator: "; ")))")
    }

    /// Only the gzip header and its extra field are checked, like Go's gzip.Reader does for
    /// stargz-snapshotter: the empty deflate body and trailer are not interpreted.
    static func parse(_ b: [UInt8], legacy: Bool) -> Result<UInt64, SeekableError> {
        guard b[0] == 0x1f, b[1] == 0x8b, b[2] == 0x08 else { return .failure(SeekableError("not a gzip header")) }
        // FEXTRA must be set; FNAME, FCOMMENT, FHCRC would move the fields, FTEXT is harmless.
        guard b[3] & 0x04 != 0, b[3] & 0x1a == 0, b[3] & 0xe0 == 0 else {
            return .failure(SeekableError("gzip flags \(b[3]) are not FEXTRA alone"))
        }
        let xlen = Int(b[10]) | Int(b[11]) << 8
        let payloadStart: Int
        if legacy {
            guard xlen == 22 else { return .failure(SeekableError("extra field length \(xlen), expected 22")) }
            payloadStart = 12
        } else {
            guard xlen == 26 else { return .failure(SeekableError("extra field length \(xlen), expected 26")) }
            guard b[12] == 0x53, b[13] == 0x47 else {
                return .failure(SeekableError("extra subfield id \(b[12]),\(b[13]), expected 'S','G'"))
            }
            let len = Int(b[14]) | Int(b[15]) << 8
            guard len == 22 else { return .failure(SeekableError("extra subfield length \(len), expected 22")) }
            payloadStart = 16
        }
        guard Array(b[(payloadStart + 16)..<(payloadStart + 22)]) == Array("STARGZ".utf8) else {
            return .failure(SeekableError("no STARGZ magic"))
        }
        var offset: UInt64 = 0
        for c in b[payloadStart..<(payloadStart + 16)] {
            let digit: UInt8
            switch c {
            case 0x30...0x39: digit = c - 0x30
            case 0x61...0x66: digit = c - 0x61 + 10
            case 0x41...0x46: digit = c - 0x41 + 10
            default: return .failure(SeekableError("TOC offset is not 16 hex digits"))
            }
            offset = offset << 4 | UInt64(digit)
        }
        guard offset <= UInt64(Int64.max) else { return .failure(SeekableError("TOC offset \(offset) too large")) }
        return .success(offset)
    }
}

/// The TOC JSON (`estargz.JTOC`).
public struct EStargzTOC: Codable, Sendable, Equatable {
    public var version: Int
    public var entries: [EStargzTOCEntry]
    public init(version: Int = EStargz.tocVersion, entries: [EStargzTOCEntry] = []) {
        self.version = version; self.entries = entries
    }
}

/// One TOC entry (`estargz.TOCEntry`), every field of the spec. Go omits empty fields
/// (`omitempty`), so all but `name` and `type` are optional; encoding leaves nil fields out.
public struct EStargzTOCEntry: Codable, Sendable, Equatable {
    /// The tar entry's full name as stored in the tar.
    public var name: String
    /// One of `TOCEntryType`'s raw values.
    public var type: String
    /// Regular files: the logical size of the whole file.
    public var size: Int64?
    /// UTC RFC 3339, whole seconds; absent means zero or unknown.
    public var modtime: String?
    public var linkName: String?
    /// Permission and mode bits as tar stores them (`tar.Header.Mode`).
    public var mode: Int64?
    public var uid: Int?
    public var gid: Int?
    /// May be present only on the first entry with the same uid.
    public var userName: String?
    /// May be present only on the first entry with the same gid.
    public var groupName: String?
    /// `reg` and `chunk`: offset in the blob of the gzip member holding this chunk's data.
    public var offset: Int64?
    /// `reg` and `chunk`: uncompressed offset of the data inside the member starting at `offset`
    /// (lets several small files share one member).
    public var innerOffset: Int64?
    public var devMajor: Int?
    public var devMinor: Int?
    /// Extended attributes; Go marshals the `[]byte` values as standard base64.
    public var xattrs: [String: String]?
    /// `reg`: "sha256:…" of the whole file's content.
    public var digest: String?
    /// `reg` and `chunk`: where this chunk starts in the file.
    public var chunkOffset: Int64?
    /// `reg` and `chunk`: uncompressed bytes of the chunk; 0 or absent means "to the end of the file".
    public var chunkSize: Int64?
    /// `reg` and `chunk`: "sha256:…" of the chunk's uncompressed bytes.
    public var chunkDigest: String?

    public init(name: String, type: TOCEntryType) {
        self.name = name; self.type = type.rawValue
    }

    public var entryType: TOCEntryType? { TOCEntryType(rawValue: type) }

    /// Xattr values decoded from base64, sorted by name; throws naming the first bad one.
    public func decodedXattrs() throws -> [(name: String, value: [UInt8])] {
        try SeekableBase64.decodeXattrs(xattrs, entry: name)
    }

    public mutating func setXattrs(_ list: [(name: String, value: [UInt8])]) {
        xattrs = list.isEmpty ? nil : SeekableBase64.encodeXattrs(list)
    }
}

/// Base64 for xattr values, shared by both TOC formats.
public enum SeekableBase64 {
    public static func encode(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }
    public static func decode(_ text: String) -> [UInt8]? { Data(base64Encoded: text).map { Array($0) } }

    static func decodeXattrs(_ xattrs: [String: String]?, entry: String) throws -> [(name: String, value: [UInt8])] {
        guard let xattrs else { return [] }
        return try xattrs.sorted { $0.key < $1.key }.map { key, text in
            guard let value = decode(text) else {
                throw SeekableError("TOC entry '\(entry)': xattr '\(key)' is not base64")
            }
            return (key, value)
        }
    }

    static func encodeXattrs(_ list: [(name: String, value: [UInt8])]) -> [String: String] {
        var out: [String: String] = [:]
        for (name, value) in list { out[name] = encode(value) }
        return out
    }
}
