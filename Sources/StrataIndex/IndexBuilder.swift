import StrataCodec
import StrataHash
import StrataOCI
import StrataSystem
import StrataTar
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What the builder needs to know of a layer blob.
public struct LayerBlob: Sendable {
    /// The blob file, or the image archive holding the blob as a member.
    public var path: String
    /// Where the blob starts in `path` (an archive member's data); 0 for a blob file.
    public var offset: UInt64 = 0
    /// Whether the blob is all of `path` (a layout's blob file) rather than a range of it.
    public var isWholeFile = true
    public var digestHex: String       // sha256 hex of the blob
    public var size: UInt64
    public var compression: LayerCompression
    /// What the image claims its uncompressed tar hashes to (`rootfs.diff_ids[number]`):
    /// indexing checks it, and so does every use of a cached index. nil: nothing claimed.
    public var diffID: DiffIDClaim?
    /// A blob fetched as it is read (nil: `path` holds it whole): `path` is then its sparse
    /// file, and every read of it makes its range present first.
    public var lazy: LazyBlob?
    /// The layer descriptor's annotations: an eStargz / zstd:chunked layer's TOC digest makes
    /// it indexable from its TOC (`LayerCache.build`).
    public var annotations: [String: String] = [:]
    public init(path: String, digestHex: String, size: UInt64, compression: LayerCompression, diffID: DiffIDClaim? = nil) {
        self.path = path; self.digestHex = digestHex; self.size = size; self.compression = compression
        self.diffID = diffID
    }

    /// A layer whose blob is fetched lazily into the cache (`LazyBlob`).
    public init(lazy: LazyBlob, compression: LayerCompression, diffID: DiffIDClaim? = nil) {
        self.init(path: lazy.path, digestHex: lazy.digestHex, size: lazy.size, compression: compression, diffID: diffID)
        self.lazy = lazy
    }
    public var name: String { "layer sha256:\(digestHex)" }
    /// The blob's file in messages: "/x/blobs/sha256/…", or "/x/img.tar at offset N".
    var place: String { isWholeFile ? path : "\(path) at offset \(offset)" }

    /// A layer whose blob is at `location` (a layout's blob file or an archive's member).
    public init(location: BlobLocation, descriptor: Descriptor, format: LayerFormat, diffID: DiffIDClaim? = nil) {
        self.init(path: location.path, descriptor: descriptor, format: format, diffID: diffID)
        offset = location.offset
        isWholeFile = location.isWholeFile
    }

    /// Opens the blob: its file, with the range the blob occupies (checked against the file;
    /// a whole blob file's size only when `checkWholeFile`).
    func open(checkWholeFile: Bool = true) throws -> BlobFile {
        let fd: FileDescriptor
        do { fd = try FileDescriptor.open(path, O_RDONLY) } catch {
            throw IndexError("\(name)", wrapping: error)
        }
        do {
            let actualSize = UInt64(try fd.stat().st_size)
            if isWholeFile {
                guard !checkWholeFile || actualSize == size else {
                    throw IndexError("\(name): blob \(path) has \(actualSize) bytes, its descriptor says \(size)")
                }
            } else {
                guard actualSize >= offset, actualSize - offset >= size else {
                    throw IndexError("\(name): archive \(path) is truncated: the blob's \(size) bytes at offset \(offset) run past its end (\(actualSize) bytes)")
                }
            }
        } catch {
            fd.close()
            throw error
        }
        if let lazy { return BlobFile(fd, size: size, availability: lazy) }
        return isWholeFile ? BlobFile(fd) : BlobFile(fd, base: offset, size: size)
    }

    /// A layer of an OCI layout: its blob file and how its media type says it is stored.
    public init(path: String, descriptor: Descriptor, format: LayerFormat, diffID: DiffIDClaim? = nil) {
        let compression: LayerCompression = switch format {
        case .tar: .none
        case .gzip: .gzip
        case .zstd: .zstd
        }
        self.init(path: path, digestHex: descriptor.digest.hex, size: UInt64(descriptor.size), compression: compression,
                  diffID: diffID)
        annotations = descriptor.annotations ?? [:]
    }

    /// The error for a layer whose uncompressed tar does not hash to the diff_id claimed for it.
    func diffIDMismatch(_ claim: DiffIDClaim, actualHex: String, cached: Bool) -> IndexError {
        IndexError("layer \(claim.number.map { "\($0) " } ?? "")sha256:\(digestHex): diff_id mismatch: the image config says \(claim.digest), "
                   + "the uncompressed layer hashes to sha256:\(actualHex)\(cached ? " (verified when it was indexed)" : "")")
    }
}

/// `config.rootfs.diff_ids[number]` of the image a layer is opened for (`number`, the layer's
/// position from the bottom, only names it in messages).
public struct DiffIDClaim: Sendable, Equatable {
    public var number: Int?
    public var digest: Digest
    public init(number: Int?, digest: Digest) { self.number = number; self.digest = digest }

    /// Whether the claim is this sha256 (no other algorithm can be verified: it never matches).
    func matches(hex: String) -> Bool { digest.algorithm == "sha256" && digest.hex == hex }
}

/// Reads a layer blob once, streaming: hashes it, decompresses it, parses its tar and records
/// every entry with the offset of its data, plus the decoder's checkpoints.
public enum IndexBuilder {
    /// A local index's checkpoint spacing. A small file's first read inflates from the
    /// checkpoint before it, so this bounds what a program's first start inflates: 512 KiB
    /// against 1 MiB cuts a python start's bytes inflated on image a by a fifth and its time by
    /// 6–12 %, for 5–8 % more time in a cold index (a boundary search and a sparse window per
    /// checkpoint; docs/performance.md, session 14).
    public static let defaultCheckpointSpacing: UInt64 = 512 << 10

    /// Builds in progress in this process, and the cores there are: the blob's digest and its
    /// span digests (`SpanHasher`) are hashed on threads of their own only while fewer layers
    /// are being indexed than there are cores (one large layer alone: image c's cold mount
    /// 7.9 → 6.1 s). With every core busy indexing, the copies that hand bytes to those threads
    /// would only add work.
    private static let running = Atomic<Int>(0)
    private static let cores = max(Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), 1)
    static var coreIsFree: Bool { running.load(ordering: .relaxed) < cores }

    /// `copyPath`: where a zstd layer's re-encoded copy is written if it needs one (see
    /// `FrameRecoder`; the file exists afterwards only then). Without it, no copy is made.
    public static func build(_ blob: LayerBlob, checkpointSpacing: UInt64 = defaultCheckpointSpacing,
                             copyPath: String? = nil) throws -> [UInt8] {
        try buildVerified(blob, checkpointSpacing: checkpointSpacing, copyPath: copyPath).bytes
    }

    /// Builds the index and returns with it the layer's diff_id: the sha256 of its uncompressed
    /// tar, hashed on a second thread as the decoder produces it (a tar layer's is its digest).
    /// A layer whose diff_id is not the one `blob.diffID` claims is an error.
    /// With `indexFile`, the index is written into that file as it is built (its entry records
    /// streamed, so memory does not grow with the layer's entry count) and `bytes` is empty.
    /// With `windowSpill` (an unlinked file), the checkpoints' windows wait there, deflated,
    /// rather than in memory, until the index is written: memory does not grow with the
    /// layer's length either.
    public static func buildVerified(_ blob: LayerBlob, checkpointSpacing: UInt64 = defaultCheckpointSpacing,
                                     copyPath: String? = nil, indexFile: FileDescriptor? = nil,
                                     windowSpill: FileDescriptor? = nil) throws -> (bytes: [UInt8], diffIDHex: String) {
        let file = try blob.open()
        defer { file.file.close() }
        running.add(1, ordering: .relaxed)
        defer { running.subtract(1, ordering: .relaxed) }
        let hasher = BackgroundHasher()
        let spanHasher = SpanHasher(compression: blob.compression)
        let decoder = IndexingDecoder(compression: blob.compression, blob: file, blobSize: blob.size,
                                      checkpointSpacing: checkpointSpacing, onCompressedBytes: { bytes in
            if coreIsFree { hasher.update(bytes) } else { hasher.updateHere(bytes) }
            spanHasher.take(bytes)
        })
        let uncompressedHasher = blob.compression == .none ? nil : BackgroundHasher()
        let windows = StoredWindows(spill: windowSpill)
        let source = DecoderTarSource(decoder, hasher: uncompressedHasher, spans: spanHasher, windows: windows)
        source.recoder = blob.compression == .zstd ? copyPath.map { FrameRecoder(path: $0, decoder: decoder) } : nil
        var recoded = false
        defer { if !recoded { source.recoder?.abandon() } }
        let reader = TarReader(source: source)
        let sink = CacheFileSink(file: indexFile)
        var writer = indexFile == nil ? LayerIndexWriter() : LayerIndexWriter(streamingTo: sink)
        do {
            while let entry = try reader.next() {
                if let input = try convert(entry, blob: blob) { try writer.appendStreaming(input) }
            }
            // Read what follows the end-of-archive blocks so the whole blob is hashed and checked.
            try source.drain()
            try decoder.finish()
            spanHasher.advance(checkpoints: decoder.checkpoints, consumed: decoder.compressedBytesConsumed)
            try windows.take(from: decoder, all: true)
        } catch let e as IndexError {
            throw e
        } catch let e as TarError {
            // A tar error is often the first sign of a corrupt blob: say which, if the digest disagrees.
            try? source.drain()
            try? decoder.finish()
            if decoder.compressedBytesConsumed == blob.size, hasher.finalizeHex() != blob.digestHex {
                throw IndexError("\(blob.name): digest mismatch (blob \(blob.place) is corrupt)")
            }
            throw IndexError("\(blob.name): \(e)")
        } catch let e as CodecError {
            throw IndexError("\(blob.name): \(e)")
        } catch {
            throw IndexError("\(blob.name)", wrapping: error)
        }
        let digest = hasher.finalize()
        guard SHA256Hasher.hex(digest) == blob.digestHex else {
            throw IndexError("\(blob.name): digest mismatch: blob \(blob.place) hashes to sha256:\(SHA256Hasher.hex(digest))")
        }
        // The whole blob is verified: a lazy blob streamed for indexing keeps what it streamed.
        try blob.lazy?.streamVerified()
        let spans: [SpanDigest]
        do { spans = try spanHasher.finish(size: blob.size, blob: file) } catch { throw IndexError("\(blob.name)", wrapping: error) }
        let diffIDHex = uncompressedHasher?.finalizeHex() ?? blob.digestHex
        if let claim = blob.diffID, !claim.matches(hex: diffIDHex) {
            throw blob.diffIDMismatch(claim, actualHex: diffIDHex, cached: false)
        }
        let copy = try source.recoder?.finish() ?? RecodedCopy()
        recoded = true
        do {
            try writer.finish(into: sink, compression: blob.compression, blobSize: blob.size,
                              uncompressedSize: decoder.uncompressedBytesProduced, digest: digest,
                              checkpoints: decoder.checkpoints, windows: windows, copy: copy, spans: spans,
                              checkpointSpacing: checkpointSpacing)
        } catch {
            throw IndexError("\(blob.name): cannot write its index", wrapping: error)
        }
        return (sink.memory, diffIDHex)
    }

    /// Maps a tar entry onto an index entry: normalised path, whiteouts decoded. Returns nil for
    /// entries that carry no meaning for the view (aufs hardlink directories).
    static func convert(_ e: TarEntry, blob: LayerBlob) throws -> IndexEntryInput? {
        func fail(_ why: String) -> IndexError {
            IndexError("\(blob.name): entry '\(PathNormalizer.abbreviated(e.path))' at offset \(e.headerOffset): \(why)")
        }
        func checked(_ input: IndexEntryInput) throws -> IndexEntryInput {
            if let why = PathNormalizer.limitViolation(input) { throw fail(why) }
            return input
        }
        let path: [UInt8]
        do { path = try PathNormalizer.normalize(e.path) } catch { throw fail("path escapes the root") }
        var input = IndexEntryInput(path: path, kind: .regular, mode: e.mode & 0o7777, uid: e.uid, gid: e.gid,
                                    size: e.size, dataOffset: e.dataOffset, storedSize: e.storedSize,
                                    mtimeSeconds: e.mtimeSeconds, mtimeNanoseconds: e.mtimeNanoseconds,
                                    devMajor: e.devMajor, devMinor: e.devMinor,
                                    // An empty PAX value deletes its keyword (POSIX); extractors
                                    // (Go's archive/tar, so umoci and containerd) set no xattr.
                                    xattrs: e.xattrs.filter { !$0.value.isEmpty }.map { (Array($0.name.utf8), $0.value) },
                                    sparse: e.sparseMap.map { $0.map { ($0.offset, $0.length) } })
        switch PathNormalizer.whiteout(path) {
        case .none: break
        case .aufsMeta: return nil
        case .invalid: throw fail("whiteout without a name")
        case .opaque(let dir):
            input.path = dir
            input.kind = .opaque
            input.size = 0; input.storedSize = 0
            return try checked(input)
        case .hides(let hidden):
            input.path = hidden
            input.kind = .whiteout
            input.size = 0; input.storedSize = 0
            return try checked(input)
        }
        switch e.type {
        case .regular: input.kind = .regular
        case .directory: input.kind = .directory; input.size = 0
        case .symlink: input.kind = .symlink; input.linkTarget = e.linkTarget; input.size = UInt64(e.linkTarget.count)
        case .hardlink:
            input.kind = .hardlink
            do { input.linkTarget = try PathNormalizer.normalize(e.linkTarget) } catch { throw fail("hardlink target escapes the root") }
            if input.linkTarget.isEmpty { throw fail("hardlink to the root directory") }
        case .characterDevice: input.kind = .characterDevice; input.size = 0
        case .blockDevice: input.kind = .blockDevice; input.size = 0
        case .fifo: input.kind = .fifo; input.size = 0
        }
        if path.isEmpty && input.kind != .directory { throw fail("the root must be a directory") }
        return try checked(input)
    }
}

/// Feeds the tar reader from the decoder.
/// Every uncompressed byte passes here once, in order: `hasher` (if any) gets them all.
final class DecoderTarSource: TarSource {
    let decoder: IndexingDecoder
    let hasher: BackgroundHasher?
    let spans: SpanHasher?
    /// Takes the checkpoints' windows as the decoder settles them.
    let windows: StoredWindows?
    /// Sees every byte of the stream, drained ones too.
    var recoder: FrameRecoder?
    private var scratch = [UInt8](repeating: 0, count: 1 << 16)
    init(_ decoder: IndexingDecoder, hasher: BackgroundHasher? = nil, spans: SpanHasher? = nil, windows: StoredWindows? = nil) {
        self.decoder = decoder; self.hasher = hasher; self.spans = spans; self.windows = windows
    }
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try decoder.read(into: buffer)
        spans?.advance(checkpoints: decoder.checkpoints, consumed: decoder.compressedBytesConsumed)
        try windows?.take(from: decoder)
        hasher?.update(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        try recoder?.take(UnsafeRawBufferPointer(rebasing: buffer[0..<n]))
        return n
    }
    /// Skipped bytes are hashed (and re-encoded) where the decoder holds them: no copy.
    /// A megabyte at a time, like reads: the span hasher lets go of compressed bytes only as
    /// it is told the decoder moved on.
    func discard(_ count: Int) throws -> Int {
        var done = 0
        while done < count {
            let want = min(count - done, 1 << 20)
            let n = try decoder.discard(want) { bytes in
                hasher?.update(bytes)
                try recoder?.take(bytes)
            }
            spans?.advance(checkpoints: decoder.checkpoints, consumed: decoder.compressedBytesConsumed)
            try windows?.take(from: decoder)
            done += n
            if n < want { break }
        }
        return done
    }
    func drain() throws {
        while try scratch.withUnsafeMutableBytes({ try read(into: $0) }) > 0 {}
    }
}
