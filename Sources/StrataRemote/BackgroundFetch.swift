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

    public init(layers: RemoteLayers, bytesPerSecond: UInt64?) {
        self.layers = layers
        self.bytesPerSecond = bytesPerSecond
    }

    /// Starts the work on its own thread.
    public func start() {
        Thread.detachNewThread { [self] in
            run()
            finished.withLock { $0 = true }
            finished.broadcast()
        }
    }

    /// Asks the work to stop (at unmount) and waits for it.
    public func stop() {
        stopping.withLock { $0 = true }
        finished.withLock(when: { $0 }) { _ in }
    }

    var shouldStop: Bool { stopping.withLock { $0 } }

    func run() {
        for layer in layers.layers where layer.verification == .pending {
            if shouldStop { return }
            complete(layer)
        }
    }

    func complete(_ layer: RemoteLayer) {
        layer.set(background: .running)
        do {
            try layer.lazy.fillRemaining(bytesPerSecond: bytesPerSecond, shouldStop: { self.shouldStop })
        } catch let mismatch as SpanMismatch {
            // The registry serves other bytes than the ones indexed: the blob is not the layer.
            layer.set(background: .failed)
            let message = "verification failed, its reads now get EIO and its blob and index are dropped from the cache: \(mismatch)"
            layers.log.error("layer \(layer.digest): \(message)")
            layer.fail(message, cache: layers.cache)
            return
        } catch {
            if shouldStop { layer.set(background: .pending); return }
            // The registry failed (down, timeouts): the blob stays partial, reads go on lazily.
            layers.log.warn("layer \(layer.digest): background fetch stopped: \(error)")
            layer.set(background: .failed)
            return
        }
        guard layer.lazy.isComplete else { layer.set(background: .pending); return }
        layer.set(background: .done)
        verify(layer)
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
