import Foundation
import StrataIndex
import StrataSystem

/// After the mount answers, completes each layer's blob in the background (one layer at a
/// time, capped at `bytesPerSecond`, yielding to on-demand reads inside `LazyBlob`), then
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
            var attempt = 0
            while !shouldStop, !complete(layer) {
                // The registry failed (down, timeouts): try again later; reads go on lazily.
                let delay = Self.retryDelays[min(attempt, Self.retryDelays.count - 1)]
                attempt += 1
                guard pause(delay) else { return }
            }
            if shouldStop { return }
        }
    }

    /// Completes and verifies one layer; false when the registry failed and it should be retried.
    func complete(_ layer: RemoteLayer) -> Bool {
        layer.set(background: .running)
        do {
            try layer.lazy.fillRemaining(bytesPerSecond: bytesPerSecond, shouldStop: { self.shouldStop })
        } catch let mismatch as SpanMismatch {
            // The registry serves other bytes than the ones indexed: the blob is not the layer.
            layer.set(background: .failed)
            let message = "verification failed, its reads now get EIO and its blob and index are dropped from the cache: \(mismatch)"
            layers.log.error("layer \(layer.digest): \(message)")
            layer.fail(message, cache: layers.cache)
            return true
        } catch {
            layer.set(background: .pending)
            if shouldStop { return true }
            layers.log.warn("layer \(layer.digest): background fetch paused, to be tried again: \(error)")
            layer.set(error: "\(error)")
            return false
        }
        guard layer.lazy.isComplete else { layer.set(background: .pending); return shouldStop }
        layer.set(error: nil)
        layer.set(background: .done)
        verify(layer)
        return true
    }

    /// Checks the complete blob; a failure makes the layer's reads EIO.
    func verify(_ layer: RemoteLayer) {
        layer.set(verification: .verifying)
        let cache = layers.cache
        do {
            _ = try IndexBuilder.buildVerified(layer.localBlob)
            if layer.indexSource == .artifact || IndexArtifacts.isUntrusted(layerDigestHex: layer.digest.hex, cache: cache) {
                try IndexArtifacts.confirm(layerDigestHex: layer.digest.hex, blob: layer.localBlob, cache: cache)
            }
            layer.set(verification: .verified)
            layers.log.info("layer \(layer.digest): blob complete and verified (sha256 and diff_id)")
        } catch {
            let message = "verification failed, its reads now get EIO and its blob and index are dropped from the cache: \(error)"
            layers.log.error("layer \(layer.digest): \(message)")
            layer.fail(message, cache: cache)
        }
    }
}
