import StrataSystem
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The stream check (`TOCStreamCheck`) of a local mount's layers that were indexed from their
/// table of contents and have no verified diff_id: after the mount answers, one low-priority
/// thread checks them one at a time. A layer that fails gets EIO for every read from then on
/// (`LayerData.fail`), its index leaves the cache, and the log gets one line naming it and the
/// first difference (or the diff_id mismatch). `strata index` runs the same check at once
/// (`checkNow`).
public final class LocalTOCCheck: Sendable {
    /// A layer's state, as `strata status` shows it.
    public enum State: String, Sendable {
        /// Not indexed from a TOC, or its stream checked by an earlier mount or `strata index`.
        case notNeeded = "not needed"
        case pending, verifying, verified, failed
        /// `--background-fetch=off`: never checked.
        case off
    }

    public let layers: [LayerData]
    let cache: LayerCache
    private let states: Locked<[(state: State, error: String?)]>
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let started = Atomic<Bool>(false)
    let logError: @Sendable (String) -> Void
    let logInfo: @Sendable (String) -> Void
    /// The checking thread's nice value: it yields the CPU to the mount's readers.
    static let nice: Int32 = 10

    /// `enabled` false (`--background-fetch=off`): the layers that need the check are marked
    /// `off` and never checked.
    public init(layers: [LayerData], cache: LayerCache, enabled: Bool,
                error: @escaping @Sendable (String) -> Void, info: @escaping @Sendable (String) -> Void) {
        self.layers = layers
        self.cache = cache
        logError = error
        logInfo = info
        states = Locked(layers.map { layer in
            (Self.needsCheck(layer.blob, index: layer.index, cache: cache) ? (enabled ? .pending : .off) : .notNeeded, nil)
        })
    }

    /// Whether the layer's index came from its TOC (content span digests, which only a TOC
    /// gives a local layer) and no check of its stream was recorded.
    static func needsCheck(_ blob: LayerBlob, index: LayerIndex, cache: LayerCache) -> Bool {
        blob.lazy == nil && index.contentSpans && cache.verifiedDiffID(digestHex: blob.digestHex) == nil
    }

    /// The layer's state and, once it failed, why.
    public func state(_ layer: Int) -> (state: State, error: String?) { states.withLock { $0[layer] } }

    /// Whether any layer waits for the check.
    public var hasWork: Bool { states.withLock { $0.contains { $0.state == .pending } } }

    /// Starts the check on a thread of its own (when any layer needs it).
    public func start() {
        guard hasWork else { return }
        started.store(true, ordering: .releasing)
        let launched = detachThread { [self] in
            _ = LinuxCalls.setThreadNice(Self.nice)
            run()
            finished.store(true, ordering: .releasing)
        }
        if !launched {
            finished.store(true, ordering: .releasing)
            logError("the check of TOC-indexed layers against their streams did not start: no thread")
        }
    }

    /// Asks the check to stop (at unmount) and waits for it a little: a layer being checked
    /// is not interrupted (nothing is recorded before its check ends, so the daemon may exit
    /// during it).
    public func stop() {
        stopping.store(true, ordering: .releasing)
        guard started.load(ordering: .acquiring) else { return }
        for _ in 0..<50 where !finished.load(ordering: .acquiring) { usleep(100_000) }
    }

    func run() {
        for (i, layer) in layers.enumerated() where state(i).state == .pending {
            if stopping.load(ordering: .acquiring) { return }
            // The same layer twice in an image, or another mount, may have checked it meanwhile.
            guard Self.needsCheck(layer.blob, index: layer.index, cache: cache) else {
                set(i, .notNeeded)
                continue
            }
            set(i, .verifying)
            do {
                try TOCStreamCheck.verify(layer.blob, toc: layer.index, cache: cache)
                set(i, .verified)
                logInfo("\(layer.blob.name): its TOC's entries match its tar stream, diff_id verified")
            } catch let unavailable as TOCStreamCheck.Unavailable {
                // The cache or the disk failed, not the layer: left unchecked for a later mount.
                set(i, .pending, error: "\(unavailable)")
                logError("\(unavailable); it stays unchecked")
            } catch {
                let message = "verification failed, its reads now get EIO and its index is dropped from the cache: \(error)"
                layer.fail(message)
                Self.drop(layer.blob, cache: cache)
                set(i, .failed, error: message)
                logError("\(layer.blob.name): \(message)")
            }
        }
    }

    private func set(_ i: Int, _ state: State, error: String? = nil) {
        states.withLock { $0[i] = (state, error) }
    }

    /// Nothing of a layer whose TOC lied stays in the cache.
    static func drop(_ blob: LayerBlob, cache: LayerCache) {
        cache.remove(cache.indexPath(digestHex: blob.digestHex))
        cache.remove(cache.diffIDPath(digestHex: blob.digestHex))
    }

    /// `strata index`: checks a local layer indexed from its TOC at once (when no check was
    /// recorded); on a lie its index leaves the cache and the error names the layer. Whether
    /// the layer was checked.
    @discardableResult
    public static func checkNow(_ blob: LayerBlob, index: LayerIndex, cache: LayerCache) throws -> Bool {
        guard needsCheck(blob, index: index, cache: cache) else { return false }
        do { try TOCStreamCheck.verify(blob, toc: index, cache: cache) } catch let unavailable as TOCStreamCheck.Unavailable {
            throw unavailable   // no verdict: the index stays
        } catch {
            drop(blob, cache: cache)
            throw error
        }
        return true
    }
}
