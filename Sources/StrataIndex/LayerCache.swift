import StrataCodec
import StrataHash
import StrataSeekable
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// The cache directory and everything in it: the one place that knows its layout, names its
/// files, writes them (atomically: a temporary, then a rename, see `AtomicFile`), marks them
/// used, lists and removes them. Callers (the mount, the snapshot store's eviction and gc) go
/// through it instead of spelling paths.
///
///   CACHE/index/sha256/<layer hex>        layer index (IndexFormat), by the compressed digest
///   CACHE/data/sha256/<layer hex>.zst     a zstd layer's re-encoded copy, when it needs one
///   CACHE/diffid/sha256/<layer hex>       the diff_id indexing verified ("sha256:HEX\n")
///   CACHE/tree/sha256/<key hex>           merged tree of a chain (MergedTreeFormat), by its key
///   CACHE/untrusted/sha256/<layer hex>    the layer's index came from a registry artifact and
///                                         is not confirmed yet (StrataRemote's IndexArtifacts)
///   CACHE/blobs/sha256/<layer hex>        a lazily fetched blob (sparse; `LazyBlob`), with
///   CACHE/blobs/sha256/<layer hex>.ranges the record of the ranges present (listed and removed with it)
///   CACHE/manifests/sha256/<hex>          registry manifests and configs by digest (StrataRegistry's
///                                         `ManifestStore`: small, checked when read, never evicted)
///
/// A layer's files are shared by every image that uses the layer. A file that fails
/// validation is removed and rebuilt. Two processes indexing the same layer at once both
/// succeed: they write the same bytes and the last rename wins.
public final class LayerCache: Sendable {
    public let directory: String

    /// What a cache file is.
    public enum Kind: CaseIterable, Sendable {
        case index, data, diffID, tree, blob

        var directory: String {
            switch self {
            case .index: "index/sha256"
            case .data: "data/sha256"
            case .diffID: "diffid/sha256"
            case .tree: "tree/sha256"
            case .blob: "blobs/sha256"
            }
        }
        var suffix: String { self == .data ? ".zst" : "" }
    }

    /// Opens the cache at `directory`, creating it.
    public convenience init(directory: String) throws {
        self.init(existing: directory)
        try makeDirectory(.index)
    }

    /// The cache at `directory`, which is neither created nor checked (to list, mark or trim
    /// one that may not exist).
    public init(existing directory: String) {
        self.directory = directory
    }

    /// The default: /var/cache/strata as root, $XDG_CACHE_HOME/strata (or ~/.cache/strata) otherwise.
    public static var defaultDirectory: String {
        if getuid() == 0 { return "/var/cache/strata" }
        if let xdg = getenv("XDG_CACHE_HOME"), xdg.pointee != 0 { return String(cString: xdg) + "/strata" }
        if let home = getenv("HOME") { return String(cString: home) + "/.cache/strata" }
        return "/tmp/strata-cache-\(getuid())"
    }

    /// The file of kind `kind` named for `hex` (a layer digest, or a merged tree's key).
    public func path(_ kind: Kind, _ hex: String) -> String { "\(folder(kind))/\(hex)\(kind.suffix)" }

    private func folder(_ kind: Kind) -> String { "\(directory)/\(kind.directory)" }

    public func indexPath(digestHex: String) -> String { path(.index, digestHex) }
    /// A zstd layer's re-encoded copy (independent frames, see `FrameRecoder`), when it needs one.
    public func dataPath(digestHex: String) -> String { path(.data, digestHex) }

    public func treePath(keyHex: String) -> String { path(.tree, keyHex) }

    /// A lazily fetched blob's sparse file (`LazyBlob`).
    public func blobPath(digestHex: String) -> String { path(.blob, digestHex) }
    /// The record of the ranges present in it; removed before the blob (`remove(_:)`).
    public func blobRecordPath(digestHex: String) -> String { path(.blob, digestHex) + Self.recordSuffix }
    static let recordSuffix = ".ranges"

    func makeBlobDirectory() throws { try makeDirectory(.blob) }

    /// The layer's diff_id as indexing verified it ("sha256:HEX\n"), beside its index. Written
    /// before the index: an index without it is from an older Strata and is made again. The
    /// file outlives the index harmlessly: a blob's diff_id follows from its digest.
    public func diffIDPath(digestHex: String) -> String { path(.diffID, digestHex) }

    /// Present while the layer's index is one a registry artifact provided and the blob has
    /// not confirmed yet: `index` uses it only for a lazy blob (whose mount confirms it once
    /// the blob is complete) and rebuilds it from any other; building removes the mark.
    public func untrustedPath(digestHex: String) -> String { "\(directory)/untrusted/sha256/\(digestHex)" }

    /// The verified diff_id of the layer (hex), or nil when none was recorded or it is unreadable.
    public func verifiedDiffID(digestHex: String) -> String? {
        guard let bytes = try? FileIO.readAll(diffIDPath(digestHex: digestHex)), bytes.count == 72,
              bytes.starts(with: Array("sha256:".utf8)), bytes.last == 0x0a else { return nil }
        let hex = bytes[7..<71]
        guard hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return String(decoding: hex, as: UTF8.self)
    }

    /// The cached index if present and valid (`verify`: see `LayerIndex.init(path:verify:)`),
    /// with its re-encoded copy in place if it has one. A damaged one is removed (and logged):
    /// the caller rebuilds it.
    public func load(digestHex: String, verify: Bool = true) -> LayerIndex? {
        let path = indexPath(digestHex: digestHex)
        guard FileIO.exists(path) else { return nil }
        do {
            let index = try LayerIndex(path: path, verify: verify)
            guard index.digestHex == digestHex else { throw IndexError("index \(path): made for sha256:\(index.digestHex)") }
            if index.copySize > 0 {
                let copy = dataPath(digestHex: digestHex)
                var st = stat()
                guard stat(copy, &st) == 0, UInt64(st.st_size) == index.copySize else {
                    throw IndexDamage(path: copy, "re-encoded copy missing or of the wrong size")
                }
            }
            return index
        } catch {
            // Never trust a damaged index: rebuild it.
            LayerCache.log("\(error); removed, to be rebuilt from the blob")
            remove(path)
            return nil
        }
    }

    /// Returns the layer's index, building it (and verifying the blob) when it is not cached.
    /// The diff_id `blob` claims is checked either way: against the blob's uncompressed bytes
    /// when indexing, against the diff_id recorded then when the index is cached.
    public func index(_ blob: LayerBlob, verify: Bool = true) throws -> (index: LayerIndex, built: Bool) {
        let verifiedDiffID = verifiedDiffID(digestHex: blob.digestHex)
        // An index from a TOC has no diff_id verified by indexing (the stream was not inflated).
        if blob.lazy != nil || !FileIO.exists(untrustedPath(digestHex: blob.digestHex)),
           verifiedDiffID != nil || TableOfContents.format(annotations: blob.annotations) != nil,
           let index = load(digestHex: blob.digestHex, verify: verify), verifiedDiffID != nil || index.contentSpans {
            guard index.blobSize == blob.size, index.compression == blob.compression else {
                throw IndexError("\(blob.name): cached index disagrees with the descriptor (size or media type)")
            }
            if let claim = blob.diffID, let verifiedDiffID, !claim.matches(hex: verifiedDiffID) {
                throw blob.diffIDMismatch(claim, actualHex: verifiedDiffID, cached: true)
            }
            blob.lazy?.setSpans(index)
            return (index, false)
        }
        let index = try build(blob)
        blob.lazy?.setSpans(index)
        return (index, true)
    }

    /// Builds the layer's index (and its re-encoded copy, if it needs one) from the blob and
    /// puts them in the cache, replacing what is there. The copy goes in first: an index in
    /// the cache always finds its copy. `checkpointSpacing`: see `IndexBuilder` (a published
    /// index is denser than a local one: `IndexArtifacts.publishedCheckpointSpacing`).
    public func build(_ blob: LayerBlob, checkpointSpacing: UInt64 = IndexBuilder.defaultCheckpointSpacing) throws -> LayerIndex {
        if blob.lazy == nil, TableOfContents.format(annotations: blob.annotations) != nil {
            do { return try buildFromTOC(blob) } catch let unsupported as TOCUnsupported {
                LayerCache.log("\(unsupported); indexing it from its stream")
            }
        }
        let copy = dataPath(digestHex: blob.digestHex)
        let temp = AtomicFile.temporaryPath(for: copy)
        try makeDirectory(.data)
        defer { unlink(temp) }
        let path = indexPath(digestHex: blob.digestHex)
        // The index is streamed into its temporary as it is built, and renamed into place last.
        func cannotWrite(_ error: any Error) -> IndexError {
            IndexError("cache \(directory): cannot write index for \(blob.name)", wrapping: error)
        }
        // The checkpoints' windows wait in a file of their own, gone when it is closed.
        let windowSpill: FileDescriptor
        do { windowSpill = try scratchFile() } catch { throw cannotWrite(error) }
        defer { windowSpill.close() }
        let indexFile: AtomicFile
        do { indexFile = try AtomicFile(temporaryPath: AtomicFile.temporaryPath(for: path), readable: true) } catch {
            throw cannotWrite(error)
        }
        var committed = false
        defer { if !committed { indexFile.discard() } }
        let (_, diffIDHex) = try IndexBuilder.buildVerified(blob, checkpointSpacing: checkpointSpacing, copyPath: temp,
                                                            indexFile: indexFile.descriptor, windowSpill: windowSpill)
        TestGate.pass(RuntimeSettings.current.indexGate)   // tests: hold a built index before it is written
        // Not fsynced: every frame carries its checksum, and a copy a crash truncated is found
        // at the next open (its size is in the index) and rebuilt.
        if FileIO.exists(temp) {
            do { try AtomicFile.publish(temp, as: copy, durable: false) } catch { throw IndexError("cache \(directory)", wrapping: error) }
        }
        do {
            try FileIO.makeDirectories(folder(.diffID))
            try FileIO.writeAtomically(diffIDPath(digestHex: blob.digestHex), Array("sha256:\(diffIDHex)\n".utf8))
            committed = true
            try indexFile.commit(as: path, durable: true)
            unlink(untrustedPath(digestHex: blob.digestHex))   // made from the blob: trusted
        } catch {
            throw cannotWrite(error)
        }
        return try LayerIndex(path: path)
    }

    /// Indexes a local eStargz / zstd:chunked layer from its TOC, verified against its
    /// annotation, and the blob against its digest (hashing is cheap; inflating is what is
    /// saved). The index's chunk digests check every chunk when it is read. The diff_id is not
    /// verified here (that needs the whole stream inflated): no diff_id record is written; the
    /// stream is checked against the TOC later (`TOCStreamCheck`: at once by `strata index`,
    /// after the mount answers by `LocalTOCCheck`), which records it.
    public func buildFromTOC(_ blob: LayerBlob) throws -> LayerIndex {
        let file = try blob.open()
        defer { file.file.close() }
        let read: (Range<UInt64>) throws -> [UInt8] = { range in
            var bytes = [UInt8](repeating: 0, count: Int(range.upperBound - range.lowerBound))
            let n = try bytes.withUnsafeMutableBytes { try file.readFully(into: $0, at: range.lowerBound) }
            guard n == bytes.count else { throw TOCError("blob ends at \(range.lowerBound + UInt64(n)), inside the TOC") }
            return bytes
        }
        let (toc, dataEnd): (TableOfContents, UInt64)
        do { (toc, dataEnd) = try Self.readTOC(blob, read: read) } catch let error as IndexError { throw error } catch let error as TOCUnsupported { throw error } catch {
            throw IndexError("\(blob.name): reading its TOC", wrapping: error)
        }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var at: UInt64 = 0
        while at < blob.size {
            let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0, at: at) }
            guard n > 0 else { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            at += UInt64(n)
        }
        let digest = hasher.finalize()
        guard at == blob.size, SHA256Hasher.hex(digest) == blob.digestHex else {
            throw IndexError("\(blob.name): digest mismatch: blob \(blob.place) hashes to sha256:\(SHA256Hasher.hex(digest))")
        }
        return try storeTOCIndex(toc, dataEnd: dataEnd, blob: blob, digest: digest)
    }

    /// The layer's TOC as its annotations vouch for it, read through `read` (blob ranges);
    /// any lie is an `IndexError` naming the layer.
    public static func readTOC(_ blob: LayerBlob, read: (Range<UInt64>) throws -> [UInt8]) throws -> (toc: TableOfContents, dataEnd: UInt64) {
        let found: (toc: TableOfContents, dataEnd: UInt64)?
        // A TOC that lies is named here; `read`'s own errors (a fetch that failed) pass through.
        do { found = try TableOfContents.read(annotations: blob.annotations, blobSize: blob.size, read: read) } catch let error as TOCError where error.unsupported {
            throw TOCUnsupported(message: "\(blob.name): \(error)")
        } catch let error as TOCError {
            throw IndexError("\(blob.name)", wrapping: error)
        }
        guard let found else { throw IndexError("\(blob.name): no TOC annotation") }
        guard (found.toc.format == .estargz ? LayerCompression.gzip : .zstd) == blob.compression else {
            throw IndexError("\(blob.name): a \(found.toc.format.rawValue) TOC on a layer of another compression")
        }
        return found
    }

    /// Builds the layer's index from `toc` (`TOCIndexBuilder`) and puts it in the cache.
    /// `digest`: the blob's sha256 (raw), verified or as the manifest names it.
    public func storeTOCIndex(_ toc: TableOfContents, dataEnd: UInt64, blob: LayerBlob, digest: [UInt8]) throws -> LayerIndex {
        let bytes = try TOCIndexBuilder.build(toc, blob: blob, digest: digest, dataEnd: dataEnd)
        let path = indexPath(digestHex: blob.digestHex)
        do {
            try makeDirectory(.index)
            try FileIO.writeAtomically(path, bytes)
            unlink(untrustedPath(digestHex: blob.digestHex))
        } catch {
            throw IndexError("cache \(directory): cannot write index for \(blob.name)", wrapping: error)
        }
        return try LayerIndex(path: path)
    }

    /// Whether the layer's annotations vouch for a TOC it can be indexed from.
    public static func hasTOC(_ blob: LayerBlob) -> Bool { hasTOC(annotations: blob.annotations) }
    public static func hasTOC(annotations: [String: String]?) -> Bool { TableOfContents.format(annotations: annotations ?? [:]) != nil }

    /// What indexing a layer from its TOC gave (`indexFromTOC`).
    public struct TOCIndexed: Sendable {
        public var index: LayerIndex
        /// Compressed ranges the TOC marks for prefetch right after mounting.
        public var prefetch: [Range<UInt64>]
        public var format: String
        public var entryCount: Int
    }

    /// Reads the layer's TOC through `read` (a registry's range requests) and caches the index
    /// it gives; `digest`: the blob's sha256 as the manifest names it (checked once the blob
    /// is complete). A TOC that lies is an `IndexError` naming the layer; `read`'s errors pass.
    public func indexFromTOC(_ blob: LayerBlob, digest: [UInt8], read: (Range<UInt64>) throws -> [UInt8]) throws -> TOCIndexed {
        let (toc, dataEnd) = try Self.readTOC(blob, read: read)
        let index = try storeTOCIndex(toc, dataEnd: dataEnd, blob: blob, digest: digest)
        return TOCIndexed(index: index, prefetch: toc.prefetch, format: toc.format.rawValue, entryCount: toc.entries.count)
    }

    /// Records the layer's diff_id as verified (a TOC-indexed layer, once its stream was checked).
    public func recordVerifiedDiffID(digestHex: String, diffIDHex: String) throws {
        try FileIO.makeDirectories(folder(.diffID))
        try FileIO.writeAtomically(diffIDPath(digestHex: digestHex), Array("sha256:\(diffIDHex)\n".utf8))
    }

    /// Caches a merged tree's bytes under its key; the path it is at. Not fsynced: the tree
    /// is checked at every mount and made again if a crash lost it.
    public func storeTree(_ bytes: [UInt8], keyHex: String) throws -> String {
        let path = treePath(keyHex: keyHex)
        try FileIO.makeDirectories(folder(.tree))
        try FileIO.writeAtomically(path, bytes, durable: false)
        return path
    }

    /// Caches a merged tree that `write` streams into its file; the path it is at. Not
    /// fsynced, like the above.
    public func storeTree(keyHex: String, _ write: (CacheFileSink) throws -> Void) throws -> String {
        let path = treePath(keyHex: keyHex)
        try FileIO.makeDirectories(folder(.tree))
        let file = try AtomicFile(temporaryPath: AtomicFile.temporaryPath(for: path), readable: true)
        do { try write(CacheFileSink(file: file.descriptor)) } catch {
            file.discard()
            throw error
        }
        try file.commit(as: path, durable: false)
        return path
    }

    /// A file in the cache that no name reaches, freed when closed: room on disk rather than in
    /// memory for what a build writes and does not keep (`IndexBuilder`'s window spill).
    public func scratchFile() throws -> FileDescriptor {
        try FileIO.makeDirectories(folder(.index))
        return try FileIO.makeAnonymousFile(in: folder(.index), prefix: ".scratch.tmp.")
    }

    /// Removes a cache file (one found damaged, or evicted).
    public func remove(_ path: String) {
        unlink(path)
    }

    private func makeDirectory(_ kind: Kind) throws {
        do { try FileIO.makeDirectories(folder(kind)) } catch {
            throw IndexError("cache \(directory)", wrapping: error)
        }
    }

    // MARK: Use, listing and removal (the snapshot store's eviction and gc)

    /// Marks the files of these layers (index and re-encoded copy) used now, for
    /// least-recently-used eviction: their modification time, not their access time, because
    /// file systems mounted relatime or noatime do not keep the latter.
    public func touch(layers digestHexes: [String]) {
        for hex in digestHexes {
            for path in [indexPath(digestHex: hex), dataPath(digestHex: hex), blobPath(digestHex: hex)] {
                _ = utimensat(AT_FDCWD, path, nil, 0)   // nil: both times now; ENOENT is fine
            }
        }
    }

    /// One file in the cache, as listed.
    public struct Entry: Sendable {
        public var kind: Kind
        public var path: String
        /// The layer digest or tree key it is named for; nil for anything else (a temporary, a
        /// stray file).
        public var key: String?
        /// A file being written now, or left by a crash (see `AtomicFile`).
        public var isTemporary: Bool
        public var isRegularFile: Bool
        /// Bytes it takes on disk.
        public var bytes: Int64
        /// The later of its access and modification times (seconds): when it was last used.
        public var used: Int
        public var modified: Int
    }

    /// The files of these kinds, by kind, then by name.
    public func entries(_ kinds: [Kind]) -> [Entry] {
        var out: [Entry] = []
        for kind in kinds {
            let dir = folder(kind)
            for name in FileIO.directoryEntries(dir) {
                // A lazy blob's record goes with the blob.
                if kind == .blob && name.hasSuffix(Self.recordSuffix) && !AtomicFile.isTemporary(name) { continue }
                let path = dir + "/" + name
                var st = stat()
                guard lstat(path, &st) == 0 else { continue }
                var key: String? = kind.suffix.isEmpty || name.hasSuffix(kind.suffix) ? String(name.dropLast(kind.suffix.count)) : nil
                if key?.contains(".") ?? false { key = nil }
                out.append(Entry(kind: kind, path: path, key: key, isTemporary: AtomicFile.isTemporary(name),
                                 isRegularFile: (st.st_mode & S_IFMT) == S_IFREG, bytes: Int64(st.st_blocks) * 512,
                                 used: max(st.st_atim.tv_sec, st.st_mtim.tv_sec), modified: st.st_mtim.tv_sec))
            }
        }
        return out
    }

    /// Removes a listed file; whether it was removed.
    public func remove(_ entry: Entry) -> Bool {
        // A blob's record first: a record without its data would be trusted.
        if entry.kind == .blob, let key = entry.key { unlink(blobRecordPath(digestHex: key)) }
        return unlink(entry.path) == 0
    }

    /// One line on stderr (the daemon's log when serving).
    static func log(_ message: String) {
        writeStandardError("strata: \(message)\n")
    }
}

/// A layer's TOC uses a feature an index cannot be built from (zstd:chunked holes): the layer
/// is indexed from its stream instead.
public struct TOCUnsupported: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
