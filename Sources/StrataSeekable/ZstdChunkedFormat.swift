/// zstd:chunked (containers/storage `pkg/chunked`): a valid tar+zstd stream in which each regular
/// file's data (and each chunk of it) is its own zstd frame, followed by zstd skippable frames
/// holding the zstd-compressed TOC JSON (newer writers add a tar-split frame) and a footer frame.
///
/// Two dialects exist, distinguished by annotation names and footer:
/// - `.legacy`: containers/storage ≤ 1.43 (Debian 12's podman 4.3.1 and skopeo 1.9.3; also
///   stargz-snapshotter's `estargz/zstdchunked`): keys `io.containers.zstd-chunked.*`, 40-byte
///   footer ending in "GnUlInUx".
/// - `.current`: containers/storage ≥ 1.44 keys `io.github.containers.zstd-chunked.*`; since 1.50 a
///   64-byte footer ending in "GNUlInUx" that also locates the tar-split frame.
/// containers/storage itself never reads the footer when the annotations are present.
public enum ZstdChunked {
    public enum Dialect: String, Sendable, CaseIterable {
        case legacy, current

        /// Layer annotation: "sha256:…" of the **compressed** TOC bytes (the skippable frame's data).
        public var manifestChecksumKey: String { prefix + "manifest-checksum" }
        /// Layer annotation `offset:length:uncompressedLength:type` (see `ZstdChunkedPosition`).
        public var manifestPositionKey: String { prefix + "manifest-position" }
        /// Layer annotation `offset:length:uncompressedLength` of the tar-split frame (current only).
        public var tarSplitPositionKey: String? { self == .current ? prefix + "tarsplit-position" : nil }

        var prefix: String {
            self == .legacy ? "io.containers.zstd-chunked." : "io.github.containers.zstd-chunked."
        }

        /// Size of the footer (the data of the last skippable frame).
        public var footerSize: Int { self == .legacy ? 40 : 64 }
        /// The footer's last 8 bytes.
        public var footerMagic: [UInt8] {
            self == .legacy ? Array("GnUlInUx".utf8) : Array("GNUlInUx".utf8)
        }
    }

    /// Skippable frame magic 0x184D2A50, little-endian; followed by a LE u32 data length (RFC 8878 §3.1.2).
    public static let skippableFrameMagic: [UInt8] = [0x50, 0x2a, 0x4d, 0x18]
    /// Bytes before a skippable frame's data: the magic and the length.
    public static let skippableFrameHeaderSize = 8
    /// Magic of an ordinary zstd frame, 0xFD2FB528 little-endian.
    public static let frameMagic: [UInt8] = [0x28, 0xb5, 0x2f, 0xfd]
    /// The only manifest type: a CRFS-compatible TOC.
    public static let manifestTypeCRFS: UInt64 = 1
    /// Layer annotation (Strata's; zstd:chunked has no landmark convention): the compressed
    /// offset, decimal, where the frames of the files placed first for prefetching end. Readers
    /// fetch [0, end) right after mounting. Other tools ignore it; it is as trusted as the manifest.
    public static let prefetchEndAnnotation = "org.strata.prefetch-end"
    /// The TOC JSON `version`.
    public static let tocVersion = 1
    /// Read this many bytes from the end of a blob to find either footer with its frame header.
    public static let maxFooterFrameSize = 64 + 8

    /// A skippable frame holding `data`.
    public static func skippableFrame(_ data: [UInt8]) -> [UInt8] {
        let n = UInt32(data.count)
        return skippableFrameMagic + [UInt8(n & 0xff), UInt8(n >> 8 & 0xff), UInt8(n >> 16 & 0xff), UInt8(n >> 24)] + data
    }
}

/// The value of a `manifest-position` annotation: "offset:length:uncompressedLength:type" in
/// decimal, `offset` pointing past the skippable frame header (at the compressed TOC itself).
/// The tar-split annotation has the same form without `type`.
public struct ZstdChunkedPosition: Sendable, Equatable {
    public var offset: UInt64
    public var length: UInt64
    public var uncompressedLength: UInt64
    public var type: UInt64?

    public init(offset: UInt64, length: UInt64, uncompressedLength: UInt64, type: UInt64? = ZstdChunked.manifestTypeCRFS) {
        self.offset = offset; self.length = length; self.uncompressedLength = uncompressedLength; self.type = type
    }

    /// Parses four fields (manifest) or three (tar-split); nil if malformed.
    public init?(annotation: String) {
        let parts = annotation.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3 || parts.count == 4 else { return nil }
        var values: [UInt64] = []
        for part in parts {
            guard !part.isEmpty, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let v = UInt64(part) else { return nil }
            values.append(v)
        }
        self.init(offset: values[0], length: values[1], uncompressedLength: values[2],
                  type: values.count == 4 ? values[3] : nil)
    }

    public var annotation: String {
        let base = "\(offset):\(length):\(uncompressedLength)"
        return type.map { base + ":\($0)" } ?? base
    }
}

/// The footer: the data of the blob's last skippable frame, all fields little-endian u64.
///     legacy, 40 bytes:  tocOffset, tocLength, tocUncompressedLength, manifestType, "GnUlInUx"
///     current, 64 bytes: tocOffset, tocLength, tocUncompressedLength, manifestType,
///                        tarSplitOffset, tarSplitLength, tarSplitUncompressedLength, "GNUlInUx"
/// Offsets point past their skippable frame headers, like the annotations.
public struct ZstdChunkedFooter: Sendable, Equatable {
    public var dialect: ZstdChunked.Dialect
    public var toc: ZstdChunkedPosition          // type = manifestType
    public var tarSplit: ZstdChunkedPosition?    // current dialect only; nil when all three are 0

    public init(dialect: ZstdChunked.Dialect, toc: ZstdChunkedPosition, tarSplit: ZstdChunkedPosition? = nil) {
        self.dialect = dialect; self.toc = toc; self.tarSplit = tarSplit
    }

    /// The footer data (40 or 64 bytes), without the skippable frame header.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        func put(_ v: UInt64) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: v >> (8 * UInt64(i)))) } }
        put(toc.offset); put(toc.length); put(toc.uncompressedLength); put(toc.type ?? ZstdChunked.manifestTypeCRFS)
        if dialect == .current {
            put(tarSplit?.offset ?? 0); put(tarSplit?.length ?? 0); put(tarSplit?.uncompressedLength ?? 0)
        }
        return out + dialect.footerMagic
    }

    /// The footer as it ends the blob: a skippable frame holding `encoded()`.
    public func encodedFrame() -> [UInt8] { ZstdChunked.skippableFrame(encoded()) }

    /// Decodes the footer from the last bytes of a blob (`tail`, at least 40 bytes; 72 to try both
    /// with their frame headers). The trailing magic selects the dialect; when `tail` also holds
    /// the skippable frame header before the footer, its magic and length must agree.
    public static func decode(tail: [UInt8]) throws -> ZstdChunkedFooter {
        guard tail.count >= 8 else { throw SeekableError("no zstd:chunked footer (fewer than 8 bytes)") }
        let magic = Array(tail.suffix(8))
        guard let dialect = ZstdChunked.Dialect.allCases.first(where: { $0.footerMagic == magic }) else {
            throw SeekableError("no zstd:chunked footer (no GnUlInUx/GNUlInUx magic at the end)")
        }
        let size = dialect.footerSize
        guard tail.count >= size else {
            throw SeekableError("zstd:chunked footer: \(size) bytes needed, \(tail.count) given")
        }
        let b = Array(tail.suffix(size))
        if tail.count >= size + ZstdChunked.skippableFrameHeaderSize {
            let h = Array(tail.suffix(size + 8).prefix(8))
            let length = UInt32(h[4]) | UInt32(h[5]) << 8 | UInt32(h[6]) << 16 | UInt32(h[7]) << 24
            guard Array(h.prefix(4)) == ZstdChunked.skippableFrameMagic, length == UInt32(size) else {
                throw SeekableError("zstd:chunked footer: not in a skippable frame of \(size) bytes")
            }
        }
        func get(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<8 { v |= UInt64(b[i * 8 + k]) << (8 * UInt64(k)) }
            return v
        }
        let toc = ZstdChunkedPosition(offset: get(0), length: get(1), uncompressedLength: get(2), type: get(3))
        guard toc.type == ZstdChunked.manifestTypeCRFS else {
            throw SeekableError("zstd:chunked footer: manifest type \(get(3)), expected 1")
        }
        var tarSplit: ZstdChunkedPosition?
        if dialect == .current, get(4) != 0 || get(5) != 0 || get(6) != 0 {
            tarSplit = ZstdChunkedPosition(offset: get(4), length: get(5), uncompressedLength: get(6), type: nil)
        }
        return ZstdChunkedFooter(dialect: dialect, toc: toc, tarSplit: tarSplit)
    }
}

/// The TOC JSON (containers/storage `minimal.TOC`).
public struct ZstdChunkedTOC: Codable, Sendable, Equatable {
    public var version: Int
    public var entries: [ZstdChunkedTOCEntry]
    /// "sha256:…" of the compressed tar-split frame (containers/storage ≥ 1.54).
    public var tarSplitDigest: String?
    public init(version: Int = ZstdChunked.tocVersion, entries: [ZstdChunkedTOCEntry] = [], tarSplitDigest: String? = nil) {
        self.version = version; self.entries = entries; self.tarSplitDigest = tarSplitDigest
    }
}

/// One TOC entry (containers/storage `minimal.FileMetadata`), every field. Older writers emit
/// `uid`, `gid`, `size` and the times even when zero; newer ones omit them, so all but `type` and
/// `name` are optional.
public struct ZstdChunkedTOCEntry: Codable, Sendable, Equatable {
    /// One of `TOCEntryType`'s raw values.
    public var type: String
    public var name: String
    public var linkName: String?
    public var mode: Int64?
    public var size: Int64?
    public var uid: Int?
    public var gid: Int?
    /// Go `time.Time` JSON: RFC 3339 with optional nanoseconds (see `RFC3339`).
    public var modtime: String?
    public var accesstime: String?
    public var changetime: String?
    public var devMajor: Int64?
    public var devMinor: Int64?
    /// Extended attributes, values standard base64.
    public var xattrs: [String: String]?
    /// `reg`: "sha256:…" of the whole file; absent for empty files.
    public var digest: String?
    /// `reg` and `chunk`: start of the zstd frame(s) holding this data in the blob.
    public var offset: Int64?
    /// `reg` (whole file, single chunk): where those frames end in the blob.
    public var endOffset: Int64?
    /// Set only when a file has several chunks: the chunk's uncompressed size.
    public var chunkSize: Int64?
    /// `chunk`: where this chunk starts in the file.
    public var chunkOffset: Int64?
    /// Set only when a file has several chunks: "sha256:…" of the chunk's uncompressed bytes.
    public var chunkDigest: String?
    /// "" (data) or "zeros" (a hole: no frame, the chunk reads as zeros).
    public var chunkType: String?

    public static let chunkTypeZeros = "zeros"

    public init(type: TOCEntryType, name: String) {
        self.type = type.rawValue; self.name = name
    }

    public var entryType: TOCEntryType? { TOCEntryType(rawValue: type) }

    public func decodedXattrs() throws -> [(name: String, value: [UInt8])] {
        try SeekableBase64.decodeXattrs(xattrs, entry: name)
    }

    public mutating func setXattrs(_ list: [(name: String, value: [UInt8])]) {
        xattrs = list.isEmpty ? nil : SeekableBase64.encodeXattrs(list)
    }
}
