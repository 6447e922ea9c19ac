import StrataIndex
import StrataOCI
import StrataSystem

/// One layer of a registry image as a mount serves it: its lazy blob in the cache, where its
/// index came from, and how far the background fetch and the verification of the whole blob are.
public final class RemoteLayer: Sendable {
    /// `toc`: built from the layer's own table of contents (eStargz, zstd:chunked).
    public enum IndexSource: String, Sendable { case cache, artifact, streamed, toc }
    public enum Background: String, Sendable {
        case pending, running, done, off, failed
        case notNeeded = "not needed"
    }
    public enum Verification: String, Sendable { case pending, verifying, verified, failed }

    struct State {
        var index: IndexSource = .cache
        var background: Background = .pending
        var verification: Verification = .pending
        var error: String?
        /// Compressed ranges the layer's TOC marks for prefetch (eStargz's landmark).
        var tocPrefetch: [Range<UInt64>] = []
        /// Where the windows of an index installed without them come from (nil: none missing).
        var windows: RegistryIndexWindowSource?
    }

    public let number: Int
    public let digest: Digest
    public let size: UInt64
    public let lazy: LazyBlob
    public let fetcher: RegistryBlobFetcher
    /// The layer as the indexer and the mount's readers open it (`blob.lazy` is `lazy`).
    public let blob: LayerBlob
    private let state = Locked(State())

    init(number: Int, layer: LayerDescriptor, lazy: LazyBlob, fetcher: RegistryBlobFetcher) {
        self.number = number
        digest = layer.descriptor.digest
        size = UInt64(max(layer.descriptor.size, 0))
        self.lazy = lazy
        self.fetcher = fetcher
        var blob = LayerBlob(path: lazy.path, descriptor: layer.descriptor, format: layer.format,
                             diffID: DiffIDClaim(number: number, digest: layer.diffID))
        blob.lazy = lazy
        self.blob = blob
    }

    /// The blob as a plain file (for verification once it is complete): no fetching.
    var localBlob: LayerBlob {
        var b = blob
        b.lazy = nil
        return b
    }

    public var indexSource: IndexSource {
        get { state.withLock { $0.index } }
    }
    func set(index: IndexSource) { state.withLock { $0.index = index } }
    var tocPrefetch: [Range<UInt64>] {
        get { state.withLock { $0.tocPrefetch } }
        set { state.withLock { $0.tocPrefetch = newValue } }
    }
    /// The source of the layer's missing index windows, when its index has some.
    var windowSource: RegistryIndexWindowSource? {
        get { state.withLock { $0.windows } }
        set { state.withLock { $0.windows = newValue } }
    }
    func set(background: Background) { state.withLock { $0.background = background } }
    func set(verification: Verification) { state.withLock { $0.verification = verification } }
    /// The last error of the background fetch (shown by status until it succeeds).
    func set(error: String?) { state.withLock { $0.error = error } }
    /// `--background-fetch=off`: the blob stays as reads leave it, never verified whole.
    public func markBackgroundOff() { set(background: .off) }
    public var verification: Verification { state.withLock { $0.verification } }
    public var background: Background { state.withLock { $0.background } }

    /// The layer failed verification: its reads get EIO from now on, and nothing of it stays
    /// in the cache (blob and index).
    func fail(_ message: String, cache: LayerCache) {
        state.withLock {
            $0.verification = .failed
            $0.error = message
            if $0.background == .running || $0.background == .pending { $0.background = .failed }
        }
        fetcher.fail(message)
        lazy.discard()
        cache.remove(cache.indexPath(digestHex: digest.hex))
        cache.remove(cache.diffIDPath(digestHex: digest.hex))
    }

    public var status: MountStatus.Layer {
        let s = state.withLock { $0 }
        let stats = lazy.statistics
        let windows = s.windows?.statistics ?? (bytes: 0, requests: 0)
        return MountStatus.Layer(
            digest: digest.description, size: size, present: lazy.presentBytes, complete: lazy.isComplete,
            index: s.index.rawValue, lazy: s.index != .streamed,
            notLazyReason: s.index == .streamed ? "no index published; streamed whole" : nil,
            background: s.background.rawValue, verification: s.verification.rawValue,
            onDemandBytes: stats.demandBytes, prefetchBytes: stats.prefetchBytes, backgroundBytes: stats.backgroundBytes,
            requests: stats.requests, indexWindowBytes: windows.bytes, indexWindowRequests: windows.requests, error: s.error)
    }
}
