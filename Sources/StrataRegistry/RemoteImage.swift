import StrataOCI

/// A registry image resolved to one platform, as `ImageResolver` does for layouts.
public enum RemoteImage {
    /// Indexes nest rarely more than twice; the bound stops a cycle of indexes.
    static let maxDepth = 8

    /// GETs the manifest the reference names (its digest checked against a digest reference),
    /// follows image indexes choosing `platform` (the host's when nil), and reads the config;
    /// every manifest and the config are verified against their digests and sizes. The result
    /// has transport `.registry` and `layoutPath` = `reference.description`.
    /// With a `store`, what is named by digest (a digest reference, an index's entries, the
    /// config) comes from it when kept there, and what is fetched is kept: only a tag costs a
    /// request (one GET: with `pull` `.always`, a tag is resolved at the registry every time, so
    /// a moved tag is seen).
    /// `pull` (with a `store`): whether a tag is asked of the registry (`PullPolicy`).
    public static func resolve(_ reference: RegistryReference, client: RegistryClient, platform: Platform?,
                               store: ManifestStore? = nil, pull: PullPolicy = .always) throws -> ResolvedImage {
        let wanted = platform ?? .host
        let top: RemoteManifest
        if reference.digest == nil, pull != .always, let kept = store?.tagged(reference) {
            top = kept
        } else if reference.digest == nil, pull == .never {
            throw client.error(.notFound, "manifest \(reference.manifestReference)", "this cache has not resolved the tag before, and --pull=never asks nothing of the registry")
        } else {
            top = try manifest(reference.manifestReference, client: client, store: store)
            if reference.digest == nil { store?.keepTag(reference, as: top.digest) }
        }
        var descriptor = top.descriptor
        var current = top
        var chain: [Digest] = []
        var depth = 0
        while current.isIndex {
            depth += 1
            guard depth <= maxDepth else {
                throw client.error(.server, "manifest \(reference.manifestReference)", "image indexes nest deeper than \(maxDepth) levels")
            }
            let name = "image index \(current.digest)"
            let index = try JSONCoding.decode(ImageIndex.self, from: current.bytes, what: "\(reference): \(name)")
            guard index.schemaVersion == 2 else {
                throw client.error(.server, name, "schemaVersion \(index.schemaVersion) is not supported (expected 2)")
            }
            guard let child = try choose(index.manifests, platform: wanted) else {
                let platforms = index.manifests.compactMap(\.platform).filter { $0.os != "unknown" }.map(\.description)
                let list = platforms.isEmpty ? "none declare a platform" : "available: " + platforms.joined(separator: ", ")
                throw client.error(.notFound, name, "no manifest for platform \(wanted) (\(list))")
            }
            chain.append(current.digest)
            let next = try manifest(child.digest.description, client: client, store: store)
            guard next.bytes.count == child.size else {
                throw client.error(.badLength, "manifest \(child.digest)", "\(next.bytes.count) bytes but \(name) says \(child.size)")
            }
            descriptor = child
            descriptor.mediaType = next.mediaType
            current = next
        }
        let name = "manifest \(current.digest)"
        let manifest = try JSONCoding.decode(Manifest.self, from: current.bytes, what: "\(reference): \(name)")
        guard manifest.schemaVersion == 2 else {
            throw client.error(.server, name, "schemaVersion \(manifest.schemaVersion) is not supported (expected 2)")
        }
        let configBytes: [UInt8]
        if let kept = store?.bytes(manifest.config.digest), Int64(kept.count) == manifest.config.size {
            configBytes = kept
        } else {
            configBytes = try client.blob(manifest.config.digest, expectedSize: manifest.config.size, maxSize: 16 << 20)
            store?.keep(configBytes, as: manifest.config.digest)
        }
        var image = try ResolvedImage.assemble(source: reference.description, place: " in \(reference)",
                                               manifestDescriptor: descriptor, manifestBytes: current.bytes,
                                               manifest: manifest, configBytes: configBytes,
                                               explicitPlatform: platform, indexChain: chain)
        image.transport = .registry
        return image
    }

    /// The manifest `reference` names: kept in `store` (a digest), else fetched (and kept).
    static func manifest(_ reference: String, client: RegistryClient, store: ManifestStore?) throws -> RemoteManifest {
        if let store, let digest = try? Digest(parsing: reference), let kept = store.manifest(digest) { return kept }
        let fetched = try client.manifest(reference)
        store?.keep(fetched.bytes, as: fetched.digest)
        return fetched
    }

    /// The entry of an index for `platform`: a lone entry as is, else the best platform match,
    /// else the first index without a platform of its own (nested indexes are searched later).
    private static func choose(_ candidates: [Descriptor], platform: Platform) throws -> Descriptor? {
        if candidates.count == 1 { return candidates[0] }
        if let i = platform.bestMatch(in: candidates.map(\.platform)) { return candidates[i] }
        return candidates.first { $0.platform == nil && MediaType.isIndex($0.mediaType) }
    }
}
