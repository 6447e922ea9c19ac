import StrataHash
import StrataOCI
#if canImport(Glibc)
import Glibc
#endif

/// The shape of a Strata index artifact (OCI image-spec 1.1 "artifact" guidelines), and of the
/// fallback referrers list distribution-spec 1.1 asks clients to keep on registries without the
/// referrers API (Debian's docker-registry 2.8 among them):
///
///   image manifest  artifactType application/vnd.strata.index.v1+json
///                   config  the empty descriptor (application/vnd.oci.empty.v1+json, "{}")
///                   layers  one blob per layer index (the cache file's bytes, IndexFormat),
///                           annotated with the layer's digest, the index version and
///                           where the windows section is; + the prefetch list, if any
///                   subject the image manifest
///   tag sha256-<manifest hex>  an OCI index listing the subject's referrers (ours and others')
enum IndexArtifactFormat {
    static let artifactType = "application/vnd.strata.index.v1+json"
    /// A layer index exactly as the cache stores it.
    static let layerIndexMediaType = "application/vnd.strata.layer-index.v1"
    /// The prefetch list (`PrefetchList`, JSON).
    static let prefetchMediaType = "application/vnd.strata.prefetch.v1+json"
    /// On a layer index blob: the digest of the image layer it indexes.
    static let layerDigestAnnotation = "vnd.strata.layer.digest"
    /// On a layer index blob: its format version (the index header's), so a reader of another
    /// version skips it without fetching it.
    static let indexVersionAnnotation = "vnd.strata.index.version"
    /// On a layer index blob: where its windows section is, "START-END" (byte offsets, END
    /// exclusive), so a mount fetches the parts around it at once instead of the header first.
    /// A hint only: the header read with those parts must place the section there.
    static let windowsAnnotation = "vnd.strata.index.windows"

    static func windowsAnnotationValue(_ section: Range<UInt64>) -> String { "\(section.lowerBound)-\(section.upperBound)" }

    static func windowsSection(annotation: String?) -> Range<UInt64>? {
        guard let parts = annotation?.split(separator: "-", omittingEmptySubsequences: false), parts.count == 2,
              let start = UInt64(parts[0]), let end = UInt64(parts[1]), start <= end else { return nil }
        return start..<end
    }
    static let createdAnnotation = "org.opencontainers.image.created"

    static let emptyMediaType = "application/vnd.oci.empty.v1+json"
    static let emptyBytes: [UInt8] = Array("{}".utf8)
    /// The empty config, with its two bytes inline so a reader need not fetch them.
    static var emptyDescriptor: Descriptor {
        Descriptor(mediaType: emptyMediaType, digest: Digest.sha256(of: emptyBytes), size: Int64(emptyBytes.count), data: "e30=")
    }

    /// Largest blob of an artifact we fetch: a layer index is ~2 % of its layer; this bounds
    /// what a hostile artifact can make us download and hold.
    static let maximumBlobSize: Int64 = 512 << 20
    /// Largest artifact manifest or referrers list we decode.
    static let maximumManifestSize: Int64 = 4 << 20

    /// The referrers fallback tag of a manifest: "<alg>-<hex>" (distribution-spec, "Referrers Tag Schema").
    static func fallbackTag(_ manifest: Digest) -> String { "\(manifest.algorithm)-\(manifest.hex)" }

    /// The artifact manifest for `subject` with these blobs.
    static func manifest(subject: Descriptor, blobs: [Descriptor], created: String) -> Manifest {
        Manifest(mediaType: MediaType.ociManifest, artifactType: artifactType, config: emptyDescriptor, layers: blobs,
                 subject: Descriptor(mediaType: subject.mediaType, digest: subject.digest, size: subject.size),
                 annotations: [createdAnnotation: created])
    }

    /// The version field of an index file's header (bytes 8..<12, little-endian), nil when too short.
    static func indexVersion(_ bytes: [UInt8]) -> UInt32? {
        guard bytes.count >= 12 else { return nil }
        return (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[8 + $1]) << (8 * UInt32($1)) }
    }

    /// The descriptor a referrers list holds for an artifact manifest: its `artifactType` and
    /// annotations copied, as the referrers API would give them.
    static func referrer(_ manifest: Manifest, digest: Digest, size: Int) -> Descriptor {
        Descriptor(mediaType: MediaType.ociManifest, digest: digest, size: Int64(size), annotations: manifest.annotations,
                   artifactType: manifest.artifactType)
    }

    /// The fallback list with `referrer` added. Earlier Strata index artifacts for the same
    /// subject are dropped (the newest replaces them, so the list does not grow with every
    /// push); every other referrer is kept as it was.
    static func adding(_ referrer: Descriptor, to list: ImageIndex?) -> ImageIndex {
        var index = list ?? ImageIndex(mediaType: MediaType.ociIndex)
        index.mediaType = MediaType.ociIndex
        index.manifests.removeAll { $0.digest == referrer.digest || $0.artifactType == artifactType }
        index.manifests.append(referrer)
        return index
    }

    /// The Strata index artifacts a referrers list names, best first: the newest by their
    /// `created` annotation, and among equals the one listed last (appended last).
    static func candidates(in list: ImageIndex) -> [Descriptor] {
        let ours = list.manifests.enumerated().filter {
            $0.element.artifactType == artifactType && MediaType.isManifest($0.element.mediaType)
        }
        return ours.sorted { a, b in
            let ca = a.element.annotations?[createdAnnotation] ?? "", cb = b.element.annotations?[createdAnnotation] ?? ""
            return ca != cb ? ca > cb : a.offset > b.offset
        }.map(\.element)
    }

    /// Now as RFC 3339 UTC ("2026-12-06T16:40:41Z"), what `org.opencontainers.image.created` holds.
    static func now() -> String {
        var t = time(nil)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))Z"
    }
}
