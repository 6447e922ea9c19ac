import StrataHash
import StrataIndex
import StrataOCI
import StrataRegistry
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// An index artifact that cannot be used or was found to be forged: one line naming it.
public struct IndexArtifactError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// What `IndexArtifacts.pull` found and installed.
public struct PulledIndexes: Sendable {
    /// The artifact manifest's digest.
    public var artifact: Digest
    /// The layers (sha256 hex) whose index it installed in the cache, untrusted until
    /// `IndexArtifacts.confirm`.
    public var layers: [String]
    /// Layers the artifact indexes whose index was already in the cache (kept, not replaced).
    public var alreadyCached: [String]
    /// The same as `layers` (the name the interim stub used).
    public var layerDigestHexes: [String] { layers }
    /// The prefetch list it carried, if any (also stored for the image unless one was recorded here).
    public var prefetch: PrefetchList?
}

/// Strata's layer indexes shared through the registry (see `IndexArtifactFormat` for the shape),
/// so a machine that has never seen an image mounts it lazily without reading its layers first.
public enum IndexArtifacts {
    public static let artifactType = IndexArtifactFormat.artifactType
    /// The checkpoint spacing of a published gzip layer's index (a local one: 1 MiB). A start
    /// from a registry fetches, for each small file it reads, the span from the checkpoint
    /// before the file to the one after it: denser spans fetch less (the python start of
    /// `scripts/bench-lazy`: see docs/performance.md). The windows they add are fetched only
    /// when a decode needs them, and are sparse (a few KB each), so the artifact's size costs
    /// a mount little: 128 KiB fetched a tenth less than 256, 64 KiB no less and more slowly.
    public static let publishedCheckpointSpacing: UInt64 = 128 << 10

    /// Whether `index` (of a layer with `compression`) must be rebuilt before it is published:
    /// a gzip layer's index made at another spacing than `publishedCheckpointSpacing`.
    public static func needsPublishedSpacing(_ index: LayerIndex) -> Bool {
        index.compression == .gzip && !index.contentSpans && index.copySize == 0
            && index.checkpointSpacing != publishedCheckpointSpacing
    }

    /// Publishes the cached indexes of every layer (+ the recorded prefetch list, if any) for
    /// `image`, then adds the artifact to the fallback referrers tag. Only trusted indexes are
    /// published (made here from a verified blob, or confirmed); a layer without one, or whose
    /// index needs a re-encoded copy (some zstd layers), is an error naming it.
    /// Returns the artifact manifest's digest.
    public static func push(image: ResolvedImage, client: RegistryClient, cache: LayerCache) throws -> Digest {
        var blobs: [Descriptor] = []
        for layer in image.layers {
            let hex = layer.descriptor.digest.hex
            guard !IndexArtifactTrust.isUntrusted(cache, hex), cache.verifiedDiffID(digestHex: hex) != nil,
                  let index = cache.load(digestHex: hex) else {
                throw IndexArtifactError("layer \(layer.descriptor.digest): no verified index in the cache \(cache.directory) to publish (index the image first)")
            }
            // A layer indexed from its own TOC needs no published index: a mount reads its TOC first.
            if index.contentSpans { continue }
            guard index.copySize == 0 else {
                throw IndexArtifactError("layer \(layer.descriptor.digest): its index needs a re-encoded copy of the layer (zstd frames too large), which cannot be published")
            }
            let bytes = try FileIO.readAll(cache.indexPath(digestHex: hex))
            var descriptor = try client.pushBlob(bytes)
            descriptor.mediaType = IndexArtifactFormat.layerIndexMediaType
            descriptor.annotations = [IndexArtifactFormat.layerDigestAnnotation: layer.descriptor.digest.description,
                                      IndexArtifactFormat.indexVersionAnnotation: "\(IndexArtifactFormat.indexVersion(bytes) ?? 0)"]
            if let section = IndexWindows.section(header: Array(bytes.prefix(IndexWindows.headerSize))) {
                descriptor.annotations?[IndexArtifactFormat.windowsAnnotation] = IndexArtifactFormat.windowsAnnotationValue(section)
            }
            blobs.append(descriptor)
        }
        if let list = PrefetchList.load(cache: cache, manifest: image.manifestDigest), !list.ranges.isEmpty {
            var descriptor = try client.pushBlob(try list.encoded())
            descriptor.mediaType = IndexArtifactFormat.prefetchMediaType
            blobs.append(descriptor)
        }
        let empty = try client.pushBlob(IndexArtifactFormat.emptyBytes)
        guard empty.digest == IndexArtifactFormat.emptyDescriptor.digest else {
            throw IndexArtifactError("\(RegistryLookup.name(client)): the empty config was stored as \(empty.digest)")
        }
        let manifest = IndexArtifactFormat.manifest(subject: image.manifestDescriptor, blobs: blobs, created: IndexArtifactFormat.now())
        let bytes = try JSONCoding.encode(manifest)
        let digest = Digest.sha256(of: bytes)
        let stored = try client.pushManifest(bytes, mediaType: MediaType.ociManifest, reference: digest.description)
        guard stored == digest else { throw IndexArtifactError("\(RegistryLookup.name(client)): artifact stored as \(stored), expected \(digest)") }
        try addFallbackReferrer(IndexArtifactFormat.referrer(manifest, digest: digest, size: bytes.count),
                                subject: image.manifestDigest, client: client)
        return digest
    }

    /// Read-modify-write of the fallback tag `sha256-<manifest hex>`, keeping every other
    /// referrer. The registry offers no conditional write, so a push racing ours may drop our
    /// entry: read it back and try again a few times.
    static func addFallbackReferrer(_ referrer: Descriptor, subject: Digest, client: RegistryClient) throws {
        let tag = IndexArtifactFormat.fallbackTag(subject)
        for _ in 0..<4 {
            let current = try fallbackList(subject: subject, client: client)
            let list = IndexArtifactFormat.adding(referrer, to: current)
            _ = try client.pushManifest(try JSONCoding.encode(list), mediaType: MediaType.ociIndex, reference: tag)
            if try fallbackList(subject: subject, client: client)?.manifests.contains(where: { $0.digest == referrer.digest }) ?? false {
                return
            }
        }
        throw IndexArtifactError("\(RegistryLookup.name(client)): tag \(tag): the referrer \(referrer.digest) did not stay in the list (concurrent pushes)")
    }

    /// The fallback referrers list of `subject`, nil when the tag does not exist.
    static func fallbackList(subject: Digest, client: RegistryClient) throws -> ImageIndex? {
        let tag = IndexArtifactFormat.fallbackTag(subject)
        guard let manifest = try RegistryLookup.manifestIfPresent(client, tag) else { return nil }
        guard MediaType.isIndex(manifest.mediaType) else {
            throw IndexArtifactError("\(RegistryLookup.name(client)): tag \(tag) is a \(manifest.mediaType), not a referrers index")
        }
        return try JSONCoding.decode(ImageIndex.self, from: manifest.bytes, what: "\(RegistryLookup.name(client)) tag \(tag)")
    }

    /// The lock around looking for and installing the image's artifact in `cache`: one process
    /// pulls, and one waiting on it finds the indexes installed. It is a flock on the image's
    /// manifest in the cache (immutable, one per image: mounts of other images do not wait);
    /// nil when the manifest is not there (no lock then: at worst both pull).
    public static func pullLock(_ cache: LayerCache, image: ResolvedImage) -> FileDescriptor? {
        try? FileDescriptor.openLocked(ManifestStore(cacheDirectory: cache.directory).path(image.manifestDigest), O_RDONLY | O_CLOEXEC)
    }

    /// Finds a published artifact (referrers API, then the fallback tag), installs its layer
    /// indexes in the cache marked untrusted, and returns what it provided; nil when there is
    /// none. Layers whose index is already cached keep it. An artifact that cannot be used (not
    /// for this image, a blob of the wrong size or digest, an index that does not parse or is
    /// for another layer) is logged and skipped as a whole; a registry that cannot be reached
    /// is an error (`RegistryError`).
    public static func pull(image: ResolvedImage, client: RegistryClient, cache: LayerCache) throws -> PulledIndexes? {
        for candidate in try candidates(image: image, client: client) {
            do {
                return try install(candidate, image: image, client: client, cache: cache)
            } catch let error as IndexArtifactError {
                log("\(error); not used")
            }
        }
        return nil
    }

    /// The Strata index artifacts of the image, best first: from the referrers API, else from
    /// the fallback tag. Both are asked at once (Debian's registry answers the API with a 404
    /// a round trip later); the API's answer is used when it lists one, else the tag's. An
    /// error of the API is thrown first; one of the tag only when the tag is needed.
    static func candidates(image: ResolvedImage, client: RegistryClient) throws -> [Descriptor] {
        let subject = image.manifestDigest
        let asked = ParallelFetch.results([0, 1]) { which -> [Descriptor]? in
            if which == 1 { return try fallbackList(subject: subject, client: client).map(IndexArtifactFormat.candidates(in:)) ?? [] }
            guard let bytes = try client.referrers(subject, artifactType: artifactType) else { return nil }
            do {
                let list = try JSONCoding.decode(ImageIndex.self, from: bytes, what: "\(RegistryLookup.name(client)) referrers of \(subject)")
                return IndexArtifactFormat.candidates(in: list)
            } catch {
                log("\(error); trying the fallback tag")
                return nil
            }
        }
        if let found = try asked[0].get(), !found.isEmpty { return found }
        return try asked[1].get() ?? []
    }

    static func install(_ candidate: Descriptor, image: ResolvedImage, client: RegistryClient, cache: LayerCache) throws -> PulledIndexes {
        let name = "index artifact \(candidate.digest) of \(RegistryLookup.name(client))"
        guard candidate.size > 0, candidate.size <= IndexArtifactFormat.maximumManifestSize else {
            throw IndexArtifactError("\(name): manifest size \(candidate.size) out of bounds")
        }
        let remote = try client.manifest(candidate.digest.description)
        guard remote.bytes.count == Int(candidate.size), Digest.sha256(of: remote.bytes) == candidate.digest else {
            throw IndexArtifactError("\(name): manifest does not match its descriptor (size or digest)")
        }
        let manifest = try wrap(name) { try JSONCoding.decode(Manifest.self, from: remote.bytes, what: name) }
        guard manifest.artifactType == artifactType else {
            throw IndexArtifactError("\(name): artifactType \(manifest.artifactType ?? "none"), not \(artifactType)")
        }
        guard manifest.subject?.digest == image.manifestDigest else {
            throw IndexArtifactError("\(name): its subject is \(manifest.subject?.digest.description ?? "missing"), not the image \(image.manifestDigest)")
        }
        let layers = Dictionary(image.layers.map { ($0.descriptor.digest.description, $0) }, uniquingKeysWith: { a, _ in a })
        var installed: [String] = [], kept: [String] = []
        var prefetch: PrefetchList?
        // Fetch and check everything first, so an artifact with one bad blob installs nothing;
        // the blobs a few at a time (each is a round trip or two the mount waits for), the
        // first failure in the artifact's order reported.
        let outcomes = ParallelFetch.results(manifest.layers) { blob -> Fetched in
            try fetchBlob(blob, layers: layers, name: name, client: client, cache: cache)
        }
        var pending: [(hex: String, index: FetchedIndex, diffID: Digest)] = []
        // Sparse files not installed (an error, or a later blob was bad) are removed.
        defer {
            for p in pending { if case .sparse(let temp, _) = p.index { cache.remove(temp) } }
        }
        for case .success(.index(let hex, let index, let diffID)) in outcomes { pending.append((hex, index, diffID)) }
        for outcome in outcomes {
            switch try outcome.get() {
            case .kept(let hex): kept.append(hex)
            case .index: continue
            case .prefetch(let list): prefetch = list
            case .skipped: continue
            }
        }
        while !pending.isEmpty {
            let (hex, index, diffID) = pending[0]
            switch index {
            case .whole(let bytes):
                try wrap(name) { try IndexArtifactTrust.install(cache, hex: hex, bytes: bytes, diffID: diffID, artifact: candidate.digest.description) }
            case .sparse(let temp, let windows):
                try wrap(name) {
                    try IndexArtifactTrust.install(cache, hex: hex, sparse: temp, windows: windows, diffID: diffID,
                                                   artifact: candidate.digest.description)
                }
            }
            pending.removeFirst()
            installed.append(hex)
        }
        if let list = prefetch, list.manifest == image.manifestDigest.description,
           PrefetchList.load(cache: cache, manifest: image.manifestDigest) == nil {
            try? list.store(cache: cache)
        }
        return PulledIndexes(artifact: candidate.digest, layers: installed, alreadyCached: kept, prefetch: prefetch)
    }

    /// What one blob of an artifact gave.
    enum Fetched: Sendable {
        /// A layer whose trusted index the cache holds already.
        case kept(String)
        /// A layer's index, fetched and checked, not installed yet.
        case index(String, FetchedIndex, Digest)
        case prefetch(PrefetchList)
        /// A blob of a kind a later version added: not ours to read.
        case skipped
    }

    /// Fetches and checks one blob of the artifact `name` (`layers`: the image's, by digest).
    static func fetchBlob(_ blob: Descriptor, layers: [String: LayerDescriptor], name: String, client: RegistryClient,
                          cache: LayerCache) throws -> Fetched {
        switch blob.mediaType {
        case IndexArtifactFormat.layerIndexMediaType:
            guard let layerName = blob.annotations?[IndexArtifactFormat.layerDigestAnnotation], let layer = layers[layerName] else {
                throw IndexArtifactError("\(name): index blob \(blob.digest) names no layer of the image")
            }
            let hex = layer.descriptor.digest.hex
            if cache.verifiedDiffID(digestHex: hex) != nil, !IndexArtifactTrust.isUntrusted(cache, hex), cache.load(digestHex: hex) != nil {
                return .kept(hex)
            }
            guard layer.diffID.algorithm == "sha256" else {
                throw IndexArtifactError("\(name): layer \(layerName) has a diff_id (\(layer.diffID)) that cannot be verified")
            }
            return .index(hex, try fetchIndex(blob, layer: layer, name: name, client: client, cache: cache), layer.diffID)
        case IndexArtifactFormat.prefetchMediaType:
            let bytes = try fetch(blob, name: name, client: client)
            return .prefetch(try wrap(name) { try PrefetchList.decode(bytes, what: "\(name) prefetch list") })
        default:
            return .skipped
        }
    }

    /// A blob of the artifact, checked against its descriptor.
    static func fetch(_ blob: Descriptor, name: String, client: RegistryClient) throws -> [UInt8] {
        guard blob.size > 0, blob.size <= IndexArtifactFormat.maximumBlobSize else {
            throw IndexArtifactError("\(name): blob \(blob.digest) size \(blob.size) out of bounds")
        }
        let bytes = try client.blob(blob.digest, range: 0..<UInt64(blob.size))
        guard bytes.count == Int(blob.size), Digest.sha256(of: bytes) == blob.digest else {
            throw IndexArtifactError("\(name): blob \(blob.digest) does not match its descriptor (size or digest)")
        }
        return bytes
    }

    /// A layer index blob fetched and checked: whole (its digest checked), or without its
    /// windows section (`LazyWindows`: a full-size file in the cache directory, the windows a
    /// hole, every other section checked; its digest checked only by `confirm`).
    enum FetchedIndex: Sendable {
        case whole([UInt8])
        case sparse(String, IndexArtifactTrust.LazyWindows)
    }

    /// A windows section this large or larger is fetched per window when used, not at install.
    static let lazyWindowsThreshold: UInt64 = 64 << 10
    /// What the first request of a layer index blob asks for: the header, and with it all of a
    /// small index.
    static let headLength: UInt64 = 64 << 10

    /// Fetches a layer index blob: its head first (the header places the windows section);
    /// a small windows section, the rest at once (checked as `fetch` does); a large one, every
    /// section but the windows, into a sparse file (see `FetchedIndex`). Validated either way.
    static func fetchIndex(_ blob: Descriptor, layer: LayerDescriptor, name: String, client: RegistryClient,
                           cache: LayerCache) throws -> FetchedIndex {
        guard blob.size > 0, blob.size <= IndexArtifactFormat.maximumBlobSize else {
            throw IndexArtifactError("\(name): blob \(blob.digest) size \(blob.size) out of bounds")
        }
        let size = UInt64(blob.size)
        func lazy(_ windows: Range<UInt64>) -> Bool {
            windows.count >= lazyWindowsThreshold && windows.lowerBound >= UInt64(IndexWindows.headerSize) && windows.upperBound <= size
        }
        // The section the descriptor announces: the parts around it are fetched at once, and
        // the header among them must agree.
        if let announced = IndexArtifactFormat.windowsSection(annotation: blob.annotations?[IndexArtifactFormat.windowsAnnotation]),
           lazy(announced) {
            return try fetchSparse(blob, around: announced, layer: layer, name: name, client: client, cache: cache)
        }
        let head = try client.blob(blob.digest, range: 0..<min(size, headLength))
        guard let windows = IndexWindows.section(header: head), lazy(windows) else {
            let bytes = head + (UInt64(head.count) < size ? try client.blob(blob.digest, range: UInt64(head.count)..<size) : [])
            guard bytes.count == Int(size), Digest.sha256(of: bytes) == blob.digest else {
                throw IndexArtifactError("\(name): blob \(blob.digest) does not match its descriptor (size or digest)")
            }
            try validate(bytes, layer: layer, name: name, cache: cache)
            return .whole(bytes)
        }
        return try fetchSparse(blob, around: windows, head: head, layer: layer, name: name, client: client, cache: cache)
    }

    /// A layer index blob without its windows section `windows`: the parts before and after
    /// it (`head`, its first bytes, already here) fetched at once into a sparse file, whose
    /// header must place the section at `windows`, then validated.
    static func fetchSparse(_ blob: Descriptor, around windows: Range<UInt64>, head: [UInt8] = [], layer: LayerDescriptor,
                            name: String, client: RegistryClient, cache: LayerCache) throws -> FetchedIndex {
        let size = UInt64(blob.size)
        let temp = AtomicFile.temporaryPath(in: cache.directory, prefix: ".tmp.artifact-index.")
        do {
            let fd = try FileDescriptor.open(temp, O_WRONLY | O_CREAT | O_EXCL, mode: 0o644)
            defer { fd.close() }
            try fd.truncate(size)
            try head.withUnsafeBytes { try fd.writeAll($0, at: 0) }
            let headEnd = UInt64(head.count)
            // The part before the windows and the part after them at once (two round trips in one).
            let pieces = [headEnd..<max(headEnd, windows.lowerBound), max(headEnd, windows.upperBound)..<size].filter { !$0.isEmpty }
            let digest = blob.digest
            let fetched = try ParallelFetch.all(pieces) { piece -> [UInt8] in
                let bytes = try client.blob(digest, range: piece)
                try bytes.withUnsafeBytes { try fd.writeAll($0, at: piece.lowerBound) }
                return piece.lowerBound == 0 ? Array(bytes.prefix(IndexWindows.headerSize)) : []
            }
            let header = headEnd > 0 ? head : fetched.first ?? []
            guard IndexWindows.section(header: header) == windows else {
                throw IndexArtifactError("\(name): index blob \(blob.digest) does not place its windows section where its descriptor says")
            }
            try fd.sync(dataOnly: true)
            try validate(path: temp, layer: layer, name: name)
        } catch {
            cache.remove(temp)
            throw error
        }
        return .sparse(temp, IndexArtifactTrust.LazyWindows(indexBlob: blob.digest, size: blob.size))
    }

    /// The bytes parse as an index (every section checked) of exactly this layer.
    static func validate(_ bytes: [UInt8], layer: LayerDescriptor, name: String, cache: LayerCache) throws {
        let temp = AtomicFile.temporaryPath(in: cache.directory, prefix: ".tmp.artifact-index.")
        defer { cache.remove(temp) }
        do {
            try FileIO.writeAtomically(temp, bytes, durable: false)
        } catch {
            throw IndexArtifactError("\(name): index of layer \(layer.descriptor.digest) is unusable: \(error)")
        }
        try validate(path: temp, layer: layer, name: name)
    }

    /// The index file parses (header and every record section checked; windows are checked
    /// one by one when read) as an index of exactly this layer.
    static func validate(path: String, layer: LayerDescriptor, name: String) throws {
        let index: LayerIndex
        do {
            index = try LayerIndex(path: path, verify: true)
        } catch {
            throw IndexArtifactError("\(name): index of layer \(layer.descriptor.digest) is unusable: \(error)")
        }
        let compression = LayerBlob(path: "", descriptor: layer.descriptor, format: layer.format).compression
        guard index.digestHex == layer.descriptor.digest.hex, index.blobSize == UInt64(max(layer.descriptor.size, 0)),
              index.compression == compression, index.copySize == 0 else {
            throw IndexArtifactError("\(name): index of layer \(layer.descriptor.digest) is for another blob (digest, size, compression or copy)")
        }
    }

    /// Called by the background fetch once the blob of a layer whose index came from an
    /// artifact is complete and its digest and diff_id are verified: re-derives the index from
    /// the blob and compares. The same bytes: the index is trusted from now on. Different: one
    /// logged line, the index removed from the cache, and this error (the mount then serves
    /// EIO for the layer). A layer whose index is not an unconfirmed artifact one returns at once.
    public static func confirm(layerDigestHex: String, blob: LayerBlob, cache: LayerCache) throws {
        guard IndexArtifactTrust.isUntrusted(cache, layerDigestHex) else { return }
        let source = IndexArtifactTrust.source(cache, layerDigestHex) ?? "an index artifact"
        let path = cache.indexPath(digestHex: layerDigestHex)
        let installed = (try? FileIO.readAll(path)) ?? []
        // Derived as it was built: checkpoints at the same spacing are at the same places.
        let installedIndex = try? LayerIndex(path: path, verify: false)
        let spacing = installedIndex?.checkpointSpacing ?? 0
        let (derived, diffIDHex) = try IndexBuilder.buildVerified(
            blob, checkpointSpacing: spacing > 0 ? spacing : IndexBuilder.defaultCheckpointSpacing)
        let lazy = IndexArtifactTrust.lazyWindows(cache, layerDigestHex)
        let difference = lazy.map { Self.difference(installed, derived, index: installedIndex, windows: $0) }
            ?? (derived == installed ? nil : "first difference at byte \(firstDifference(installed, derived, in: 0..<max(installed.count, derived.count)))")
        if let difference {
            let message = "layer sha256:\(layerDigestHex): the index from \(source) differs from the one derived from the verified blob "
                + "(\(installed.count) vs \(derived.count) bytes, \(difference)): forged or damaged; rejected and removed from the cache"
            log(message)
            IndexArtifactTrust.reject(cache, hex: layerDigestHex)
            throw IndexArtifactError(message)
        }
        // Installed without (some of) its windows: the derived bytes are the published blob, whole.
        if lazy != nil { try FileIO.writeAtomically(path, derived) }
        try IndexArtifactTrust.trust(cache, hex: layerDigestHex, diffIDHex: diffIDHex)
    }

    /// How an index installed without its windows section differs from the derived one (nil:
    /// it does not): every byte outside the windows section, each window present (checksum
    /// valid) in it, and the derived bytes' digest against the index blob the artifact named.
    static func difference(_ installed: [UInt8], _ derived: [UInt8], index: LayerIndex?, windows: IndexArtifactTrust.LazyWindows) -> String? {
        guard installed.count == derived.count, derived.count == Int(windows.size) else { return "sizes differ" }
        guard let section = IndexWindows.section(header: installed), section.upperBound <= UInt64(installed.count) else {
            return "no windows section"
        }
        let (lower, upper) = (Int(section.lowerBound), Int(section.upperBound))
        for range in [0..<lower, upper..<installed.count] where installed[range] != derived[range] {
            return "first difference at byte \(firstDifference(installed, derived, in: range))"
        }
        guard let index else { return "the installed index cannot be read" }
        for i in 0..<index.checkpointCount {
            guard let window = index.storedWindow(i), window.range.upperBound <= installed.count else { continue }
            let present = installed[window.range].withUnsafeBytes { IndexWindows.matches($0, checksum: window.checksum) }
            if present, installed[window.range] != derived[window.range] {
                return "window of checkpoint \(i) differs at byte \(firstDifference(installed, derived, in: window.range))"
            }
        }
        guard Digest.sha256(of: derived) == windows.indexBlob else {
            return "the derived index is not the published index blob \(windows.indexBlob)"
        }
        return nil
    }

    static func firstDifference(_ a: [UInt8], _ b: [UInt8], in range: Range<Int>) -> Int {
        range.first { $0 >= a.count || $0 >= b.count || a[$0] != b[$0] } ?? range.upperBound
    }

    /// Removes the unconfirmed artifact indexes of the image's layers from the cache (so they
    /// are built again from the blobs: `strata index --push` publishes only indexes made or
    /// confirmed here); the layers (hex) whose index it removed.
    @discardableResult
    public static func dropUnconfirmed(image: ResolvedImage, cache: LayerCache) -> [String] {
        image.layers.map(\.descriptor.digest.hex).filter { hex in
            guard IndexArtifactTrust.isUntrusted(cache, hex) else { return false }
            IndexArtifactTrust.reject(cache, hex: hex)
            return true
        }
    }

    /// Whether the layer's cached index came from an artifact and is not confirmed yet (the
    /// mount calls `confirm` for it once its blob is complete).
    public static func isUntrusted(layerDigestHex: String, cache: LayerCache) -> Bool {
        IndexArtifactTrust.isUntrusted(cache, layerDigestHex)
    }

    static func wrap<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as IndexArtifactError { throw error } catch {
            throw IndexArtifactError("\(name): \(error)")
        }
    }

    static func log(_ message: String) {
        writeStandardError("strata: \(message)\n")
    }
}
