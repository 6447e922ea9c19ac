import StrataHash

/// `docker save` output (also `skopeo copy … docker-archive:FILE:REPO:TAG`): `manifest.json`
/// lists, per image, its config member, its `RepoTags` and its layer members (uncompressed
/// tars, so a layer's digest is its diff_id). Resolving one gives the OCI manifest such an
/// image has when copied into a layout (config and layers in OCI media types); every blob is
/// read in place from the archive, and verified as a layout's are: the config against its
/// sha256 (and its member name, when that names a digest), layers against their diff_ids
/// when they are indexed.
public struct DockerArchive: Sendable {
    public let archive: ImageArchive

    public init(archive: ImageArchive) { self.archive = archive }

    struct Entry: Decodable {
        var config: String
        var repoTags: [String]?
        var layers: [String]
        enum CodingKeys: String, CodingKey { case config = "Config", repoTags = "RepoTags", layers = "Layers" }
    }

    var path: String { archive.path }

    public func resolve(_ ref: ImageReference, platform: Platform? = nil) throws -> ResolvedImage {
        let what = "\(path): member manifest.json"
        let entries = try JSONCoding.decode([Entry].self, from: try archive.read(try archive.member("manifest.json")), what: what)
        let entry: Entry
        if let tag = ref.tag {
            let matching = entries.filter { ($0.repoTags ?? []).contains { DockerArchive.sameName($0, tag) } }
            guard let first = matching.first else {
                let tags = entries.flatMap { $0.repoTags ?? [] }
                throw OCIError("\(ref): no image tagged \(tag) in \(path) (\(tags.isEmpty ? "it has no tags" : "tags: " + tags.joined(separator: ", ")))")
            }
            entry = first
        } else {
            guard entries.count == 1 else {
                let tags = entries.flatMap { $0.repoTags ?? [] }
                throw OCIError("\(ref): \(what) lists \(entries.count) images; name one as docker-archive:\(path):REPO:TAG (tags: \(tags.joined(separator: ", ")))")
            }
            entry = entries[0]
        }
        guard ref.digest == nil else { throw OCIError("\(ref): a docker-archive image is named by REPO:TAG, not by digest") }

        let configMember = try archive.member(entry.config)
        let configBytes = try archive.read(configMember)
        let configDigest = Digest.sha256(of: configBytes)
        let configName = "config \(entry.config) in \(path)"
        if let named = DockerArchive.digestHex(inName: entry.config, suffix: ".json"), named != configDigest.hex {
            throw OCIError("\(configName): content has digest \(configDigest), not the one its name says")
        }
        let config = try ImageConfig.decodeChecked(configBytes, name: configName, owner: what,
                                                   layerCount: entry.layers.count, configReference: entry.config)
        var layers: [LayerDescriptor] = []
        var locations: [BlobLocation] = []
        for (i, name) in entry.layers.enumerated() {
            let member = try archive.member(name)
            let diffID = config.rootfs.diffIDs[i]
            // A layer member named by a digest must carry that one (its diff_id: it is a tar).
            if let named = DockerArchive.digestHex(inName: name, suffix: ".tar"), named != diffID.hex || diffID.algorithm != "sha256" {
                throw OCIError("\(path): layer \(i) member \(name) is not the config's diff_id \(diffID)")
            }
            let descriptor = Descriptor(mediaType: MediaType.ociLayerTar, digest: diffID, size: Int64(member.size))
            layers.append(LayerDescriptor(descriptor: descriptor, format: .tar, diffID: diffID))
            locations.append(BlobLocation(path: path, offset: member.offset, size: member.size, isWholeFile: false))
        }
        let configDescriptor = Descriptor(mediaType: MediaType.ociConfig, digest: configDigest, size: Int64(configBytes.count))
        let manifest = Manifest(config: configDescriptor, layers: layers.map(\.descriptor))
        let manifestBytes = try JSONCoding.encode(manifest)
        let manifestDescriptor = Descriptor(mediaType: MediaType.ociManifest, digest: Digest.sha256(of: manifestBytes),
                                            size: Int64(manifestBytes.count))
        let imagePlatform = config.platform
        if let wanted = platform, !wanted.matches(imagePlatform) {
            throw OCIError("\(ref): image is for \(imagePlatform), not \(wanted)")
        }
        var image = ResolvedImage(layoutPath: path, manifestDescriptor: manifestDescriptor, manifest: manifest,
                                  manifestBytes: manifestBytes, config: config, configBytes: configBytes,
                                  layers: layers, platform: imagePlatform)
        image.layerLocations = locations
        image.transport = .dockerArchive
        return image
    }

    /// "busybox:latest" names "docker.io/library/busybox:latest" too, as docker does.
    static func sameName(_ a: String, _ b: String) -> Bool {
        func full(_ s: String) -> String {
            var s = s
            if !s.contains("/") { s = "library/" + s }
            if let slash = s.firstIndex(of: "/"), !s[..<slash].contains(".") && !s[..<slash].contains(":") && s[..<slash] != "localhost" {
                s = "docker.io/" + s
            }
            return s
        }
        return a == b || full(a) == full(b)
    }

    /// The hex of a member named `blobs/sha256/<hex>` or `<hex><suffix>` (skopeo names configs
    /// `<hex>.json` and layers `<hex>.tar`; docker's older `<id>/layer.tar` ids are not digests).
    static func digestHex(inName name: String, suffix: String) -> String? {
        let parts = name.split(separator: "/").map(String.init)
        guard let last = parts.last else { return nil }
        let candidate: String
        if parts.count >= 3 && parts[parts.count - 3] == "blobs" && parts[parts.count - 2] == "sha256" {
            candidate = last
        } else if parts.count == 1 && last.hasSuffix(suffix) {
            candidate = String(last.dropLast(suffix.count))
        } else {
            return nil
        }
        return candidate.count == 64 && candidate.allSatisfy({ ("0"..."9").contains($0) || ("a"..."f").contains($0) }) ? candidate : nil
    }
}
