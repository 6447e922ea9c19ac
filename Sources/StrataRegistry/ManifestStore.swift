import Foundation
import StrataOCI
import StrataSystem

/// Manifests and configs kept by digest on this machine (`CACHE/manifests/sha256/<hex>`), so a
/// mount of an image seen before asks the registry only what a tag names now: a digest's bytes
/// never change. Content-addressed and checked: a file whose sha256 is not its name is ignored
/// (and fetched again). Writes are atomic and best-effort (a cache).
public struct ManifestStore: Sendable {
    public let directory: String
    /// Manifests, indexes and configs read whole; anything larger is not kept.
    static let maxSize = 16 << 20

    /// What each tag named when this cache last resolved it (`CACHE/manifests/tags/<sha256 of
    /// HOST/REPO:TAG>`, the digest as text), for `--pull=missing|never`.
    public let tagDirectory: String

    /// The store under a strata cache directory.
    public init(cacheDirectory: String) {
        directory = cacheDirectory + "/manifests/sha256"
        tagDirectory = cacheDirectory + "/manifests/tags"
    }

    private func tagPath(_ reference: RegistryReference) -> String {
        let name = "\(reference.host)/\(reference.repository):\(reference.tag ?? "latest")"
        return "\(tagDirectory)/\(Digest.sha256(of: Array(name.utf8)).hex)"
    }

    /// The manifest the tag named when this cache last resolved it, if that is still kept.
    public func tagged(_ reference: RegistryReference) -> RemoteManifest? {
        guard reference.digest == nil, let text = try? FileIO.readAll(tagPath(reference)),
              let digest = try? Digest(parsing: String(decoding: text, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) else { return nil }
        return manifest(digest)
    }

    /// Records what the tag names now (after a manifest GET by tag).
    public func keepTag(_ reference: RegistryReference, as digest: Digest) {
        guard reference.digest == nil else { return }
        try? FileIO.makeDirectories(tagDirectory)
        try? FileIO.writeAtomically(tagPath(reference), Array("\(digest)\n".utf8), durable: false)
    }

    public func path(_ digest: Digest) -> String { "\(directory)/\(digest.hex)" }

    /// The bytes of `digest` if kept and intact.
    public func bytes(_ digest: Digest) -> [UInt8]? {
        guard digest.isVerifiable, let bytes = try? FileIO.readAll(path(digest)), bytes.count <= Self.maxSize,
              Digest.sha256(of: bytes) == digest else { return nil }
        return bytes
    }

    /// Keeps `bytes` (whose sha256 is `digest`, checked by the caller), replacing a damaged copy.
    public func keep(_ bytes: [UInt8], as digest: Digest) {
        guard digest.isVerifiable, bytes.count <= Self.maxSize, self.bytes(digest) == nil else { return }
        try? FileIO.makeDirectories(directory)
        try? FileIO.writeAtomically(path(digest), bytes, durable: false)
    }

    /// A kept manifest or index, its media type read from the document (as the registry's
    /// Content-Type was checked against it when it was fetched).
    public func manifest(_ digest: Digest) -> RemoteManifest? {
        guard let bytes = bytes(digest),
              let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return nil }
        var type = json["mediaType"] as? String
        if type == nil, json["manifests"] != nil { type = MediaType.ociIndex }
        if type == nil, json["config"] != nil, json["layers"] != nil { type = MediaType.ociManifest }
        guard let type, RegistryClient.manifestAcceptTypes.contains(type) else { return nil }
        return RemoteManifest(bytes: bytes, mediaType: type, digest: digest)
    }
}
