/// Resolves references in a layout to one platform's image.
public enum ImageResolver {
    /// Parses `reference` (`DIR`, `DIR:TAG`, `DIR@DIGEST`), opens the layout and resolves it.
    /// `platform` nil means the host's.
    public static func resolve(reference: String, platform: Platform? = nil) throws -> ResolvedImage {
        let ref = try ImageReference(parsing: reference)
        return try ImageLayout(path: ref.layoutPath).resolve(ref, platform: platform)
    }

    /// Indexes nest rarely more than twice; the bound stops a cycle of indexes.
    static let maxDepth = 8
}

extension ImageLayout {
    /// Picks the manifest for `ref` from index.json (by tag, by digest, or the only one),
    /// follows image indexes choosing `platform` (the host's when nil), then reads and checks
    /// manifest and config. Every blob read is size- and digest-verified.
    public func resolve(_ ref: ImageReference, platform: Platform? = nil) throws -> ResolvedImage {
        let top = try index()
        let wanted = platform ?? .host
        var chain: [Digest] = []
        let start: Descriptor
        if let digest = ref.digest {
            start = try findDigest(digest, in: top, ref: ref)
        } else if let tag = ref.tag {
            let named = top.manifests.filter {
                $0.refName == tag || $0.annotations?[MediaType.containerdImageNameAnnotation] == tag
            }
            guard !named.isEmpty else {
                throw OCIError("\(ref): no tag \"\(tag)\" in \(indexPath) (\(tagList(top)))")
            }
            start = try pick(from: named, platform: wanted, what: "tag \"\(tag)\" in \(indexPath)")
        } else {
            switch top.manifests.count {
            case 0:
                throw OCIError("\(indexPath): lists no manifests")
            case 1:
                start = top.manifests[0]
            default:
                // A flat multi-platform index.json is an index in all but name.
                if top.manifests.allSatisfy({ $0.platform != nil && $0.refName == nil }) {
                    start = try pick(from: top.manifests, platform: wanted, what: indexPath)
                } else {
                    throw OCIError("\(ref): \(indexPath) lists \(top.manifests.count) manifests; name one as \(path):TAG or \(path)@DIGEST (\(tagList(top)))")
                }
            }
        }
        let (descriptor, bytes, manifest) = try followToManifest(start, platform: wanted, chain: &chain, depth: 0)
        return try finish(manifestDescriptor: descriptor, bytes: bytes, manifest: manifest,
                          explicitPlatform: platform, chain: chain)
    }

    private func tagList(_ index: ImageIndex) -> String {
        let tags = index.manifests.compactMap(\.refName)
        return tags.isEmpty ? "it has no tags" : "tags: " + tags.joined(separator: ", ")
    }

    /// Finds a descriptor by digest at the top level, or else inside the indexes it lists
    /// (so `DIR@<platform manifest digest>` works too).
    private func findDigest(_ digest: Digest, in top: ImageIndex, ref: ImageReference) throws -> Descriptor {
        if let d = top.manifests.first(where: { $0.digest == digest }) { return d }
        var queue = top.manifests.filter { MediaType.isIndex($0.mediaType) }
        var seen = Set<Digest>()
        while !queue.isEmpty {
            let d = queue.removeFirst()
            guard seen.insert(d.digest).inserted, seen.count <= 256 else { continue }
            let child = try readIndex(d)
            if let found = child.manifests.first(where: { $0.digest == digest }) { return found }
            queue += child.manifests.filter { MediaType.isIndex($0.mediaType) }
        }
        throw OCIError("\(ref): no manifest with digest \(digest) in \(path)")
    }

    /// Chooses among descriptors by platform; a single one is taken as is.
    private func pick(from candidates: [Descriptor], platform: Platform, what: String) throws -> Descriptor {
        if candidates.count == 1 { return candidates[0] }
        if let i = platform.bestMatch(in: candidates.map(\.platform)) { return candidates[i] }
        // Attestation manifests carry unknown/unknown; they are not platforms to offer.
        let available = candidates.compactMap(\.platform).filter { $0.os != "unknown" }.map(\.description)
        let list = available.isEmpty ? "none declare a platform" : "available: " + available.joined(separator: ", ")
        throw OCIError("\(what): no manifest for platform \(platform) (\(list))")
    }

    private func readIndex(_ d: Descriptor) throws -> ImageIndex {
        let bytes = try readVerifiedBlob(d)
        let name = "image index \(d.digest) in \(path)"
        let index = try JSONCoding.decode(ImageIndex.self, from: bytes, what: name)
        guard index.schemaVersion == 2 else {
            throw OCIError("\(name): schemaVersion \(index.schemaVersion) is not supported (expected 2)")
        }
        return index
    }

    private func followToManifest(_ d: Descriptor, platform: Platform, chain: inout [Digest], depth: Int)
        throws -> (Descriptor, [UInt8], Manifest)
    {
        guard depth <= ImageResolver.maxDepth else {
            throw OCIError("image index \(d.digest) in \(path): indexes nest deeper than \(ImageResolver.maxDepth) levels")
        }
        if MediaType.isIndex(d.mediaType) {
            let index = try readIndex(d)
            chain.append(d.digest)
            let child = try pick(from: index.manifests, platform: platform,
                                 what: "image index \(d.digest) in \(path)")
            return try followToManifest(child, platform: platform, chain: &chain, depth: depth + 1)
        }
        let name = "manifest \(d.digest) in \(path)"
        if d.mediaType == MediaType.dockerManifestSchema1 || d.mediaType == MediaType.dockerManifestSchema1Signed {
            throw OCIError("\(name): Docker schema 1 manifests are not supported")
        }
        guard MediaType.isManifest(d.mediaType) else {
            throw OCIError("\(name): media type \"\(d.mediaType)\" is not an image manifest or index")
        }
        let bytes = try readVerifiedBlob(d)
        let manifest = try JSONCoding.decode(Manifest.self, from: bytes, what: name)
        guard manifest.schemaVersion == 2 else {
            throw OCIError("\(name): schemaVersion \(manifest.schemaVersion) is not supported (expected 2)")
        }
        return (d, bytes, manifest)
    }

    private func finish(manifestDescriptor: Descriptor, bytes: [UInt8], manifest: Manifest,
                        explicitPlatform: Platform?, chain: [Digest]) throws -> ResolvedImage {
        let name = "manifest \(manifestDescriptor.digest) in \(path)"
        guard MediaType.isConfig(manifest.config.mediaType) else {
            throw OCIError("\(name): config media type \"\(manifest.config.mediaType)\" is not an image config")
        }
        let configBytes = try readVerifiedBlob(manifest.config)
        let configName = "config \(manifest.config.digest) in \(path)"
        let config = try JSONCoding.decode(ImageConfig.self, from: configBytes, what: configName)
        guard config.rootfs.type == "layers" else {
            throw OCIError("\(configName): rootfs.type \"\(config.rootfs.type)\" is not \"layers\"")
        }
        guard config.rootfs.diffIDs.count == manifest.layers.count else {
            throw OCIError("\(name): \(manifest.layers.count) layers but config \(manifest.config.digest) lists \(config.rootfs.diffIDs.count) rootfs.diff_ids")
        }
        var layers: [LayerDescriptor] = []
        for (i, layer) in manifest.layers.enumerated() {
            let format: LayerFormat
            do {
                format = try MediaType.layerFormat(layer.mediaType)
            } catch let error as OCIError {
                throw OCIError("\(name): layer \(i) (\(layer.digest)): \(error.message)")
            }
            layers.append(LayerDescriptor(descriptor: layer, format: format, diffID: config.rootfs.diffIDs[i]))
        }
        var platform = config.platform
        if platform.variant == nil { platform.variant = manifestDescriptor.platform?.variant }
        // Only a platform asked for is enforced: mounting a foreign image to look inside is fine.
        if let wanted = explicitPlatform, !wanted.matches(platform) {
            throw OCIError("\(name): image is for \(platform), not \(wanted)")
        }
        return ResolvedImage(layoutPath: path, manifestDescriptor: manifestDescriptor, manifest: manifest,
                             manifestBytes: bytes, config: config, configBytes: configBytes,
                             layers: layers, platform: platform, indexChain: chain)
    }
}
