import StrataTar

/// A seekable layer's table of contents in the one shape the layer index is built from,
/// whichever format it came from (eStargz's `stargz.index.json`, zstd:chunked's manifest):
/// the tar entries in stream order, and for each regular file the compressed chunks that hold
/// its bytes, each with the sha256 of its uncompressed bytes.
///
/// Nothing here is trusted: the readers only parse. The index builder checks that chunks tile
/// their files, lie inside the blob, and follow one another without overlapping.
public struct TableOfContents: Sendable {
    /// The largest TOC JSON read (a 2-million-entry layer's is about 500 bytes an entry): a TOC
    /// is inflated before its digest can be checked, so its size must be bounded first.
    public static let maxJSONSize = 1 << 30
    public enum Format: String, Sendable, CaseIterable {
        case estargz
        case zstdChunked = "zstd:chunked"
    }

    public var format: Format
    /// In the order the layer's tar stream holds them.
    public var entries: [Entry]
    /// Compressed blob ranges worth fetching right after mounting (eStargz: the entries before
    /// the `.prefetch.landmark`), in blob order.
    public var prefetch: [Range<UInt64>]

    public init(format: Format, entries: [Entry] = [], prefetch: [Range<UInt64>] = []) {
        self.format = format; self.entries = entries; self.prefetch = prefetch
    }

    public enum Kind: String, Sendable {
        case regular, directory, symlink, hardlink, characterDevice, blockDevice, fifo
    }

    public struct Entry: Sendable {
        /// As written in the TOC (the index builder normalises it like a tar name).
        public var path: [UInt8]
        public var kind: Kind
        /// Symlink target, or the path a hardlink names.
        public var linkTarget: [UInt8]
        public var mode: UInt32
        public var uid: UInt32
        public var gid: UInt32
        public var size: UInt64
        public var mtimeSeconds: Int64
        public var mtimeNanoseconds: UInt32
        public var devMajor: UInt32
        public var devMinor: UInt32
        public var xattrs: [(name: [UInt8], value: [UInt8])]
        /// Regular files with bytes: chunks tiling [0, size) in order.
        public var chunks: [Chunk]

        public init(path: [UInt8], kind: Kind, linkTarget: [UInt8] = [], mode: UInt32 = 0o644, uid: UInt32 = 0, gid: UInt32 = 0,
                    size: UInt64 = 0, mtimeSeconds: Int64 = 0, mtimeNanoseconds: UInt32 = 0, devMajor: UInt32 = 0,
                    devMinor: UInt32 = 0, xattrs: [(name: [UInt8], value: [UInt8])] = [], chunks: [Chunk] = []) {
            self.path = path; self.kind = kind; self.linkTarget = linkTarget; self.mode = mode; self.uid = uid
            self.gid = gid; self.size = size; self.mtimeSeconds = mtimeSeconds; self.mtimeNanoseconds = mtimeNanoseconds
            self.devMajor = devMajor; self.devMinor = devMinor; self.xattrs = xattrs; self.chunks = chunks
        }
    }

    public struct Chunk: Sendable, Equatable {
        /// Where the chunk's bytes start in its file.
        public var fileOffset: UInt64
        /// Its uncompressed bytes.
        public var size: UInt64
        /// Where its gzip member / zstd frame starts in the blob.
        public var compressedStart: UInt64
        /// Where the bytes needed to decode it end (the next member or frame, or the TOC).
        public var compressedEnd: UInt64
        /// sha256 of its uncompressed bytes (32 bytes).
        public var digest: [UInt8]
        /// Uncompressed bytes of its member/frame before the chunk's own (eStargz's TOC entry:
        /// its tar header shares the member); 0 for every chunk a TOC lists.
        public var skip: UInt64

        public init(fileOffset: UInt64, size: UInt64, compressedStart: UInt64, compressedEnd: UInt64, digest: [UInt8],
                    skip: UInt64 = 0) {
            self.fileOffset = fileOffset; self.size = size; self.compressedStart = compressedStart
            self.compressedEnd = compressedEnd; self.digest = digest; self.skip = skip
        }
    }
}

/// A TOC that cannot be used: one line naming what is wrong (the caller adds the layer).
public struct TOCError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// A feature Strata cannot index from (the layer is then indexed from its stream), not a lie.
    public var unsupported: Bool
    public init(_ message: String, unsupported: Bool = false) { self.message = message; self.unsupported = unsupported }
    public var description: String { message }
}

extension TableOfContents {
    /// Which TOC a layer's annotations vouch for (eStargz's TOC digest, zstd:chunked's manifest
    /// checksum); nil: none, and the layer is indexed from its stream. A footer alone is never
    /// trusted.
    public static func format(annotations: [String: String]) -> Format? {
        if annotations[EStargz.tocDigestAnnotation] != nil { return .estargz }
        if ZstdChunkedReader.annotations(annotations) != nil { return .zstdChunked }
        return nil
    }

    /// Reads and verifies the TOC of a blob of `blobSize` bytes whose annotations vouch for one,
    /// with `read` fetching blob ranges (two small reads: the footer, then the TOC; one when a
    /// zstd:chunked position is annotated). Returns the TOC and where chunk data must end (the
    /// TOC's start; eStargz: the footer's, its TOC member holding its last entry); nil when the annotations vouch for no TOC.
    public static func read(annotations: [String: String], blobSize: UInt64,
                            read: (Range<UInt64>) throws -> [UInt8]) throws -> (toc: TableOfContents, dataEnd: UInt64)? {
        if let digest = annotations[EStargz.tocDigestAnnotation] {
            let range = try EStargzReader.tocRange(tail: try read(EStargzReader.footerRange(blobSize: blobSize)), blobSize: blobSize)
            let toc = try EStargzReader.read(member: try read(range), range: range, tocDigest: digest)
            // The TOC's own entry (last, in the TOC member) ends at the footer; every chunk
            // before it must end before it starts (chunks follow one another).
            return (toc, range.upperBound)
        }
        if let (checksum, annotated) = ZstdChunkedReader.annotations(annotations) {
            let position = try annotated ?? ZstdChunkedReader.position(tail: try read(ZstdChunkedReader.footerRange(blobSize: blobSize)))
            let range = try ZstdChunkedReader.tocRange(position, blobSize: blobSize)
            var toc = try ZstdChunkedReader.read(compressed: try read(range), position: position, checksum: checksum)
            let dataEnd = range.lowerBound - UInt64(ZstdChunked.skippableFrameHeaderSize)
            if let text = annotations[ZstdChunked.prefetchEndAnnotation] {
                guard let end = UInt64(text), end <= dataEnd else {
                    throw TOCError("annotation \(ZstdChunked.prefetchEndAnnotation) '\(text)' is not an offset within the layer's data (\(dataEnd) bytes)")
                }
                toc.prefetch = end > 0 ? [0..<end] : []
            }
            return (toc, dataEnd)
        }
        return nil
    }
}

/// What every entry of both TOC dialects holds, under the same JSON names: an entry's metadata.
protocol TOCEntryFields {
    var type: String { get }
    var name: String { get }
    var offset: Int64? { get }
    var linkName: String? { get }
    var mode: Int64? { get }
    var size: Int64? { get }
    var uid: Int? { get }
    var gid: Int? { get }
    var modtime: String? { get }
    var deviceNumbers: (major: Int64, minor: Int64) { get }
    func decodedXattrs() throws -> [(name: String, value: [UInt8])]
}

extension EStargzTOCEntry: TOCEntryFields {
    var deviceNumbers: (major: Int64, minor: Int64) { (Int64(devMajor ?? 0), Int64(devMinor ?? 0)) }
}

extension ZstdChunkedTOCEntry: TOCEntryFields {
    var deviceNumbers: (major: Int64, minor: Int64) { (devMajor ?? 0, devMinor ?? 0) }
}

extension TableOfContents.Kind {
    /// A chunk record continues a regular file.
    init(_ type: TOCEntryType) {
        self = switch type {
        case .reg, .chunk: .regular
        case .dir: .directory
        case .symlink: .symlink
        case .hardlink: .hardlink
        case .char: .characterDevice
        case .block: .blockDevice
        case .fifo: .fifo
        }
    }
}

extension TableOfContents.Entry {
    /// An entry's metadata from its TOC record (its chunks are the reader's to add).
    init(fields e: some TOCEntryFields, kind: TableOfContents.Kind, fail: (String) -> TOCError) throws {
        let time = e.modtime.flatMap { RFC3339.parse($0) } ?? (0, 0)
        let xattrs: [(name: String, value: [UInt8])]
        do { xattrs = try e.decodedXattrs() } catch { throw TOCError("\(error)") }
        guard (e.size ?? 0) >= 0, (e.uid ?? 0) >= 0, (e.gid ?? 0) >= 0 else { throw fail("negative size or id") }
        let device = e.deviceNumbers
        self.init(path: Array(e.name.utf8), kind: kind, linkTarget: Array((e.linkName ?? "").utf8),
                  mode: UInt32(truncatingIfNeeded: e.mode ?? 0), uid: UInt32(truncatingIfNeeded: e.uid ?? 0),
                  gid: UInt32(truncatingIfNeeded: e.gid ?? 0), size: kind == .regular ? UInt64(e.size ?? 0) : 0,
                  mtimeSeconds: time.seconds, mtimeNanoseconds: time.nanoseconds,
                  devMajor: UInt32(truncatingIfNeeded: device.major), devMinor: UInt32(truncatingIfNeeded: device.minor),
                  xattrs: xattrs.map { (Array($0.name.utf8), $0.value) })
    }
}

/// Where a chunk's compressed bytes end at the latest: where the next chunk's member or frame
/// starts, or where the data ends (the TOC's start) after the last one.
struct ChunkEnds {
    private let starts: [UInt64]
    private let dataEnd: UInt64

    init(_ entries: [some TOCEntryFields], dataEnd: UInt64) {
        var starts = Set<UInt64>()
        for e in entries where (e.type == TOCEntryType.reg.rawValue && (e.size ?? 0) > 0) || e.type == TOCEntryType.chunk.rawValue {
            if let o = e.offset, o >= 0 { starts.insert(UInt64(o)) }
        }
        self.starts = starts.sorted()
        self.dataEnd = dataEnd
    }

    func end(after start: UInt64) -> UInt64 {
        var lo = 0, hi = starts.count
        while lo < hi { let mid = (lo + hi) / 2; if starts[mid] <= start { lo = mid + 1 } else { hi = mid } }
        return lo < starts.count ? starts[lo] : dataEnd
    }
}

extension TOCEntryType {
    /// The TOC type of a tar entry of that type.
    public init(_ type: TarEntryType) {
        self = switch type {
        case .regular: .reg
        case .directory: .dir
        case .symlink: .symlink
        case .hardlink: .hardlink
        case .characterDevice: .char
        case .blockDevice: .block
        case .fifo: .fifo
        }
    }
}
