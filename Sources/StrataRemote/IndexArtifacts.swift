import StrataIndex
import StrataOCI
import StrataRegistry

// STUB with the contract's signatures, until the `artifacts` branch lands (the lead takes
// that branch's version of this file): no artifact is ever found, nothing is published.

/// What `pull` provided: the layers (digest hex) whose index it installed in the cache.
public struct PulledIndexes: Sendable {
    public var layerDigestHexes: [String] = []
}

public enum IndexArtifacts {
    public static let artifactType = "application/vnd.strata.index.v1+json"

    public static func push(image: ResolvedImage, client: RegistryClient, cache: LayerCache) throws -> Digest {
        throw RemoteError("index artifacts: not available in this build")
    }

    public static func pull(image: ResolvedImage, client: RegistryClient, cache: LayerCache) throws -> PulledIndexes? {
        nil
    }

    public static func confirm(layerDigestHex: String, blob: LayerBlob, cache: LayerCache) throws {}
}
