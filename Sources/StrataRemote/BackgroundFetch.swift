import Foundation
import StrataIndex
import StrataSystem

/// After the mount answers, completes each layer's blob in the background (one layer at a
/// time, capped at `bytesPerSecond`, yielding to on-demand reads inside `LazyBlob`, and only
/// once on-demand and prefetch fetching has been quiet for `quietPeriod`: a container's start
/// reads in bursts, and the link is theirs while they last), then
/// verifies the whole blob: its sha256 and its uncompressed stream's diff_id, by indexing it
/// again from the local copy. A layer whose index came from an artifact then has that index
/// confirmed against the one re-derived (`IndexArtifacts.confirm`). A mismatch is logged as
/// one line; the layer's reads get EIO from then on, and neither blob nor index stays cached.
public final class BackgroundFetch: Sendable {
    public let bytesPerSecond: UInt64?
    let layers: RemoteLayers
    private let stopping = Locked(false)
    private let finished = Locked(false)
    private let started = Locked(false)
    /// Seconds before a fetch the registry failed is tried again (doubling up to the last).
    static let retryDelays: [Double] = [1, 2, 5, 10, 30, 60]
    /// Seconds without on-demand or prefetch fetching before the background fetch goes on.
    static let quietPeriod: Double = 1
    /// Bytes fetched on demand and by prefetch so far, and when that last changed.
    private let activity = Locked((bytes: UInt64(0), since: ContinuousClock.now))

    public init(layers: RemoteLayers, bytesPerSecond: UInt64?) {
        self.layers = layers
        self.bytesPerSecond = bytesPerSecond
    }

    /// Starts the work on its own thread.
    public func start() {
        started.withLock { $0 = true }
        Thread.detachNewThread { [self] in
            RegistryBlobFetcher.markBackgroundThread()
            run()
            finished.withLock { $0 = true }
        }
    }

    /// Asks the work to stop (at unmount) and waits for it a little: a fetch stops between
    /// chunks, but a verification under way is not interrupted (nothing is recorded before
    /// it ends, so the daemon may exit during it).
    public func stop() {
        stopping.withLock { $0 = true }
        guard started.withLock({ $0 }) else { return }
        for _ in 0..<50 where !finished.withLock({ $0 }) { usleep(100_000) }
    }

    /// Sleeps `seconds` unless asked to stop meanwhile; whether to go on.
    func pause(_ seconds: Double) -> Bool {
        var left = seconds
        while left > 0 {
            if shouldStop { return false }
            usleep(100_000)
            left -= 0.1
        }
        return !shouldStop
    }

    var shouldStop: Bool { stopping.withLock { $0 } }

    func run() {
        for layer in layers.layers where layer.verification == .pending {
            if alreadyVerified(layer) { continue }
            var attempt = 0
            while !shouldStop {
                guard waitForQuiet() else { return }
                let outcome = complete(layer)
                if outcome == .done { break }
                if outcome == .interrupted { continue }
                // The registry failed (down, timeouts): try again later; reads go on lazily.
                let delay = Self.retryDelays[min(attempt, Self.retryDelays.count - 1)]
                attempt += 1
                guard pause(delay) else { return }
            }
            if shouldStop { return }
        }
    }

    /// A blob complete when the mount started, read through an index made here (or confirmed
    /// here) whose span digests tile it, was verified span by span as it arrived, against an
    /// index built from the digest- and diff_id-verified stream: hashing it whole again at every
    /// mount would only cost a warm start its CPU. An index from an artifact not yet confirmed
    /// gets the whole check.
    func alreadyVerified(_ layer: RemoteLayer) -> Bool {
        guard layer.lazy.isComplete, layer.indexSource != .artifact,
              !IndexArtifacts.isUntrusted(layerDigestHex: layer.digest.hex, cache: layers.cache),
              !TOCCheck.pending(layer, cache: layers.cache) else { return false }
        layer.set(background: .done)
        layer.set(verification: .verified)
        layers.log.info("layer \(layer.digest): blob already complete, every span verified against its index")
        return true
    }

    /// Waits until no on-demand or prefetch fetch has happened for `quietPeriod`; false when
    /// asked to stop meanwhile.
    func waitForQuiet() -> Bool {
        while !quiet() { guard pause(0.1) else { return false } }
        return !shouldStop
    }

    /// Whether on-demand and prefetch fetching has been quiet for `quietPeriod`.
    func quiet() -> Bool {
        let bytes = layers.layers.reduce(UInt64(0)) { total, layer in
            let s = layer.lazy.statistics
            return total + s.demandBytes + s.prefetchBytes
        }
        return activity.withLock { a in
            if a.bytes != bytes { a = (bytes, .now) }
            return ContinuousClock.now - a.since >= .milliseconds(Int(Self.quietPeriod * 1000))
        }
    }

    enum Outcome { case done, retry, interrupted }

    /// Completes and verifies one layer: `.retry` when the registry failed, `.interrupted`
    /// when on-demand reads came back (the fill yields the link to them).
    func complete(_ layer: RemoteLayer) -> Outcome {
        layer.set(background: .running)
        do {
            try layer.lazy.fillRemaining(bytesPerSecond: bytesPerSecond, shouldStop: { self.shouldStop || !self.quiet() })
        } catch let mismatch as SpanMismatch {
            // The registry serves other bytes than the ones indexed: the blob is not the layer.
            layer.set(background: .failed)
            let message = "verification failed, its reads now get EIO and its blob and index are dropped from the cache: \(mismatch)"
            layers.log.error("layer \(layer.digest): \(message)")
            layer.fail(message, cache: layers.cache)
            return .done
        } catch {
            layer.set(background: .pending)
            if shouldStop { return .done }
            layers.log.warn("layer \(layer.digest): background fetch paused, to be tried again: \(error)")
            layer.set(error: "\(error)")
            return .retry
        }
        guard layer.lazy.isComplete else { layer.set(background: .pending); return shouldStop ? .done : .interrupted }
        layer.set(error: nil)
        layer.set(background: .done)
        verify(layer)
        return .done
    }

    /// Indexes a complete blob again only to check it (digest, diff_id, tar), into scratch
    /// files so that memory does not grow with the layer (a 4 GiB layer has 54 MB of windows).
    /// Should that fail, it is done again in memory: a full disk is not a bad layer.
    static func check(_ blob: LayerBlob, cache: LayerCache) throws {
        do {
            let index = try cache.scratchFile()
            defer { index.close() }
            let windows = try cache.scratchFile()
            defer { windows.close() }
            _ = try IndexBuilder.buildVerified(blob, indexFile: index, windowSpill: windows)
        } catch {
            _ = try IndexBuilder.buildVerified(blob)
        }
    }

    /// Checks the complete blob; a failure makes the layer's reads EIO.
    func verify(_ layer: RemoteLayer) {
        layer.set(verification: .verifying)
        let cache = layers.cache
        do {
            if TOCCheck.pending(layer, cache: cache) {
                // Indexed from its TOC: the stream must hold what the TOC says it does.
                try TOCCheck.verify(layer, cache: cache)
                layer.set(verification: .verified)
                layers.log.info("layer \(layer.digest): blob complete and verified (sha256, diff_id and its TOC's entries)")
                return
            }
            // An index from an artifact is confirmed by deriving it again from the blob, which
            // checks the blob's digest and diff_id on the way: the layer is indexed once, not twice.
            if IndexArtifacts.isUntrusted(layerDigestHex: layer.digest.hex, cache: cache) {
                try IndexArtifacts.confirm(layerDigestHex: layer.digest.hex, blob: layer.localBlob, cache: cache)
            } else {
                try Self.check(layer.localBlob, cache: cache)
            }
            layer.set(verification: .verified)
            layers.log.info("layer \(layer.digest): blob complete and verified (sha256 and diff_id)")
        } catch let unavailable as TOCStreamCheck.Unavailable {
            // The cache or the disk failed, not the layer: no verdict, checked again by a later mount.
            layer.set(verification: .pending)
            layer.set(error: "\(unavailable)")
            layers.log.error("layer \(layer.digest): \(unavailable)")
        } catch {
            let message = "verification failed, its reads now get EIO and its blob and index are dropped from the cache: \(error)"
            layers.log.error("layer \(layer.digest): \(message)")
            layer.fail(message, cache: cache)
        }
    }
}
