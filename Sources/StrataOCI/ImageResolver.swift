import StrataSystem

/// Resolves references in a layout to one platform's image.
public enum ImageResolver {
    /// Parses `reference` (`DIR`, `DIR:TAG`, `DIR@DIGEST`), opens the layout and resolves it.
    /// `platform` nil means the host's.
    /// Archives (`oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`, or a plain path
    /// to either) are read in place.
    public static func resolve(reference: String, platform: Platform? = nil) throws -> ResolvedImage {
        let ref = try ImageReference(parsing: reference)
        let path = ImageLayout.trimmed(ref.layoutPath)
        switch ref.transport {
        case .layout where FileIO.isDirectory(path) || !FileIO.exists(path):
            return try ImageLayout(path: path).resolve(ref, platform: platform)
        case .registry:
            throw OCIError("\(ref): a registry image: open it with StrataRegistry (RemoteImage.resolve)")
        case .layout, .ociArchive, .dockerArchive:
            guard FileIO.exists(path) else { throw OCIError("\(path): no such file (expected an image archive)") }
            guard !FileIO.isDirectory(path) else {
                throw OCIError("\(path): a directory, not an archive: name it as a layout (\(path) or oci:\(path))")
            }
            let archive = try ImageLayout.openArchive(path)
            switch (archive.kind, ref.transport) {
            case (.ociArchive, .layout), (.ociArchive, .ociArchive):
                return try ImageLayout(archive: archive).resolve(ref, platform: platform)
            case (.dockerArchive, .layout), (.dockerArchive, .dockerArchive), (.ociArchive, .dockerArchive):
                // Newer docker save writes an OCI layout beside manifest.json: manifest.json still names by REPO:TAG.
                guard archive.members["manifest.json"] != nil else {
                    throw OCIError("\(path): an oci-archive (no manifest.json): name it oci-archive:\(path)")
                }
                return try DockerArchive(archive: archive).resolve(ref, platform: platform)
            case (.dockerArchive, .ociArchive):
                throw OCIError("\(path): a docker-archive (docker save), not an oci-archive: name it docker-archive:\(path)")
            case (_, .registry):
                throw OCIError("\(ref): a registry image, not an archive")
            case (.notAnImage, _):
                throw OCIError("\(path): not an image archive; \(ImageArchive.conversionHint)")
            }
        }
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
        let candidates: [Descriptor]
        let context: String
        if let digest = ref.digest {
            candidates = [try findDigest(digest, in: top, ref: ref)]
            context = "image index \(digest) in \(path)"
        } else if let tag = ref.tag {
            candidates = top.manifests.filter {
                $0.refName == tag || $0.annotations?[MediaType.containerdImageNameAnnotation] == tag
            }
            guard !candidates.isEmpty else {
                throw OCIError("\(ref): no tag \"\(tag)\" in \(indexPath) (\(tagList(top)))")
            }
            context = candidates.count == 1 ? "image index \(candidates[0].digest) in \(path)" : "tag \"\(tag)\" in \(indexPath)"
        } else {
            // Several untagged entries that all declare a platform: index.json is itself the
            // multi-platform index. Anything else needs a tag or digest to choose.
            let flat = top.manifests.allSatisfy { $0.platform != nil && $0.refName == nil }
            guard !top.manifests.isEmpty else { throw OCIError("\(indexPath): lists no manifests") }
            guard top.manifests.count == 1 || flat else {
                throw OCIError("\(ref): \(indexPath) lists \(top.manifests.count) manifests; name one as \(path):TAG or \(path)@DIGEST (\(tagList(top)))")
            }
            candidates = top.manifests
            context = candidates.count == 1 ? "image index \(candidates[0].digest) in \(path)" : indexPath
        }
        return try resolve(candidates: candidates, platform: wanted, explicitPlatform: platform, context: context)
    }

    /// Follows `candidates` down to one manifest for `platform`; `context` names the place
    /// in the error when no platform matches.
    private func resolve(candidates: [Descriptor], platform: Platform, explicitPlatform: Platform?,
                         context: String) throws -> ResolvedImage {
        var available: [String] = []
        guard let chain = try choose(from: candidates, platform: platform, depth: 0, available: &available) else {
            let list = available.isEmpty ? "none declare a platform" : "available: " + available.joined(separator: ", ")
            throw OCIError("\(context): no manifest for platform \(platform) (\(list))")
        }
        let (bytes, manifest) = try readManifest(chain.last!)
        return try finish(manifestDescriptor: chain.last!, bytes: bytes, manifest: manifest,
                          explicitPlatform: explicitPlatform, chain: chain.dropLast().map(\.digest))
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

    /// The path of descriptors (indexes, then a manifest) from one of `candidates` to a manifest
    /// for `platform`, or nil with the platforms seen added to `available`. A lone candidate is
    /// taken as is; an index without a platform of its own is searched (nested indexes).
    private func choose(from candidates: [Descriptor], platform: Platform, depth: Int,
                        available: inout [String]) throws -> [Descriptor]? {
        guard depth <= ImageResolver.maxDepth else {
            throw OCIError("\(path): image indexes nest deeper than \(ImageResolver.maxDepth) levels")
        }
        func descend(_ d: Descriptor) throws -> [Descriptor]? {
            guard MediaType.isIndex(d.mediaType) else { return [d] }
            let index = try readIndex(d)
            return try choose(from: index.manifests, platform: platform, depth: depth + 1, available: &available)
                .map { [d] + $0 }
        }
        if candidates.count == 1 { return try descend(candidates[0]) }
        if let i = platform.bestMatch(in: candidates.map(\.platform)) { return try descend(candidates[i]) }
        // Attestation manifests carry unknown/unknown; they are not platforms to offer.
        available += candidates.compactMap(\.platform).filter { $0.os != "unknown" }.map(\.description)
        for d in candidates where d.platform == nil && MediaType.isIndex(d.mediaType) {
            if let found = try descend(d) { return found }
        }
        return nil
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

    private func readManifest(_ d: Descriptor) throws -> ([UInt8], Manifest) {
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
        return (bytes, manifest)
    }

    private func finish(manifestDescriptor: Descriptor, bytes: [UInt8], manifest: Manifest,
                        explicitPlatform: Platform?, chain: [Digest]) throws -> ResolvedImage {
        let name = "manifest \(manifestDescriptor.digest) in \(path)"
        guard MediaType.isConfig(manifest.config.mediaType) else {
            throw OCIError("\(name): config media type \"\(manifest.config.mediaType)\" is not an image config")
        }
        let configBytes = try readVerifiedBlob(manifest.config)
        var image = try ResolvedImage.assemble(source: path, place: " in \(path)", manifestDescriptor: manifestDescriptor,
                                               manifestBytes: bytes, manifest: manifest, configBytes: configBytes,
                                               explicitPlatform: explicitPlatform, indexChain: chain)
        if archive != nil {
            // Every layer must be a member of the stated size before anything is indexed or mounted.
            image.layerLocations = try image.layers.map { try blobLocation($0.descriptor) }
            image.transport = .ociArchive
        }
        return image
    }
}
