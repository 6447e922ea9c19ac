import Foundation
import StrataHash
import StrataOCI
import StrataSystem

/// What the store resolved, kept under `CACHE/store/` so that after a restart it answers every
/// reference and layer it answered before without the registry, and even if a tag has moved
/// since (podman's committed layers keep symlinks into the store):
///
///     CACHE/store/references/<sha256 of the reference>.json   {"reference": …, "manifests": [digest…]}
///     CACHE/store/images/<manifest hex>.json                   the manifest and config bytes
///
/// Both files are rewritten whole (write-then-rename); the image file's bytes are checked
/// against their digests when read back, so a damaged record is ignored, never trusted.
public struct StoreRecords: Sendable {
    public let directory: String

    struct ReferenceRecord: Codable {
        var reference: String
        var manifests: [String]
    }

    struct ImageRecord: Codable {
        var source: String
        var descriptor: Descriptor
        var manifest: Data
        var config: Data
    }

    public init(cacheDirectory: String) {
        directory = cacheDirectory + "/store"
    }

    func referencePath(_ reference: String) -> String {
        "\(directory)/references/\(SHA256Hasher.hex(of: Array(reference.utf8))).json"
    }

    func imagePath(_ digest: Digest) -> String { "\(directory)/images/\(digest.hex).json" }

    /// The manifests recorded for a reference, newest last.
    public func manifests(of reference: String) -> [Digest] {
        guard let bytes = try? FileIO.readAll(referencePath(reference)),
              let record = try? JSONDecoder().decode(ReferenceRecord.self, from: Data(bytes)),
              record.reference == reference else { return [] }
        return record.manifests.compactMap { try? Digest(parsing: $0) }
    }

    /// The image recorded under `digest`, verified against it; nil when absent or damaged.
    public func image(_ digest: Digest) -> ResolvedImage? {
        guard let bytes = try? FileIO.readAll(imagePath(digest)),
              let record = try? JSONDecoder().decode(ImageRecord.self, from: Data(bytes)),
              record.descriptor.digest == digest,
              Digest.sha256(of: Array(record.manifest)) == digest,
              let manifest = try? JSONCoding.decode(Manifest.self, from: Array(record.manifest), what: "manifest \(digest)"),
              Digest.sha256(of: Array(record.config)) == manifest.config.digest,
              var image = try? ResolvedImage.assemble(source: record.source, place: " in \(record.source)",
                                                      manifestDescriptor: record.descriptor, manifestBytes: Array(record.manifest),
                                                      manifest: manifest, configBytes: Array(record.config),
                                                      explicitPlatform: nil, indexChain: [])
        else { return nil }
        image.transport = .registry
        return image
    }

    /// Records `image` as resolved from `reference` (kept with the ones recorded before).
    public func record(_ image: ResolvedImage, reference: String) throws {
        try FileIO.makeDirectories(directory + "/references")
        try FileIO.makeDirectories(directory + "/images")
        let imageRecord = ImageRecord(source: image.layoutPath, descriptor: image.manifestDescriptor,
                                      manifest: Data(image.manifestBytes), config: Data(image.configBytes))
        try FileIO.writeAtomically(imagePath(image.manifestDigest), Array(try JSONEncoder().encode(imageRecord)))
        var manifests = self.manifests(of: reference).map(\.description)
        if !manifests.contains(image.manifestDigest.description) { manifests.append(image.manifestDigest.description) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try FileIO.writeAtomically(referencePath(reference),
                                   Array(try encoder.encode(ReferenceRecord(reference: reference, manifests: manifests))))
    }
}
