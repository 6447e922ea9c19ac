#if canImport(Glibc)
import Glibc
#endif
import StrataHash
import StrataOCI
import StrataSystem
import StrataTar

/// Builds an OCI image layout in code, so mount tests need no committed binaries.
///
/// Compression goes through the system `gzip` and `zstd` programs rather than StrataCodec:
/// the fixtures must not share code (or bugs) with what they test.
public final class ImageBuilder {
    public enum Compression: Sendable, Equatable {
        case none
        case gzip
        /// Concatenated gzip members, one per `chunk` bytes of tar (RFC 1952 allows it; pigz
        /// and some registries produce it).
        case gzipMultiMember(chunk: Int)
        case zstd
        /// Concatenated zstd frames, one per `chunk` bytes of tar (zstd:chunked, seekable zstd).
        case zstdMultiFrame(chunk: Int)

        /// A handful of members/frames for an ordinary small layer.
        public static let gzipMultiMember = Compression.gzipMultiMember(chunk: 4096)
        public static let zstdMultiFrame = Compression.zstdMultiFrame(chunk: 4096)

        var family: String {
            switch self {
            case .none: "tar"
            case .gzip, .gzipMultiMember: "gzip"
            case .zstd, .zstdMultiFrame: "zstd"
            }
        }
    }

    public enum MediaTypeStyle: Sendable {
        case oci, docker, nondistributable
    }

    /// A layer as it goes into the manifest. Hostile tests edit `descriptor` to lie.
    public struct Layer {
        public var descriptor: Descriptor
        /// sha256 of the uncompressed tar ("diff_id").
        public var diffID: Digest
    }

    /// Config fields a test may set; nil leaves them out.
    public struct ConfigOverrides {
        public var entrypoint: [String]?
        public var cmd: [String]?
        public var env: [String]?
        public var user: String?
        public var workingDir: String?
        public var labels: [String: String]?
        public init(entrypoint: [String]? = nil, cmd: [String]? = nil, env: [String]? = nil, user: String? = nil,
                    workingDir: String? = nil, labels: [String: String]? = nil) {
            self.entrypoint = entrypoint; self.cmd = cmd; self.env = env; self.user = user
            self.workingDir = workingDir; self.labels = labels
        }
    }

    public let layout: String
    public let writer: ImageLayoutWriter
    public var layers: [Layer] = []

    public init(layout: String) throws {
        self.layout = layout
        writer = try ImageLayoutWriter(path: layout)
    }

    /// Adds a layer made of `entries` (data must match each regular entry's size).
    @discardableResult
    public func addLayer(entries: [(TarEntry, [UInt8])], format: TarWriter.Format = .pax,
                         compression: Compression = .gzip, mediaTypeStyle: MediaTypeStyle = .oci) throws -> Layer {
        try addLayer(tar: try TarWriter.archive(entries, format: format), compression: compression,
                     mediaTypeStyle: mediaTypeStyle)
    }

    /// Adds a layer from a ready tar stream (e.g. one GNU tar wrote, or one crafted by hand).
    @discardableResult
    public func addLayer(tar: [UInt8], compression: Compression = .gzip,
                         mediaTypeStyle: MediaTypeStyle = .oci) throws -> Layer {
        let blob = try ImageBuilder.compress(tar, compression)
        let type = ImageBuilder.mediaType(compression, mediaTypeStyle)
        let descriptor = try writer.writeBlob(blob, mediaType: type)
        let layer = Layer(descriptor: descriptor, diffID: Digest.sha256(of: tar))
        layers.append(layer)
        return layer
    }

    /// Raw mode, for hostile tests: `blob` is stored as is (when `store`), and the descriptor
    /// says whatever it is told. `diffID` defaults to the blob's own digest, which is right only
    /// for an uncompressed tar: a mount refuses a layer whose diff_id is wrong.
    @discardableResult
    public func addRawLayer(blob: [UInt8], mediaType: String, digest: Digest? = nil, size: Int64? = nil,
                            diffID: Digest? = nil, store: Bool = true) throws -> Layer {
        let real = store ? try writer.writeBlob(blob, mediaType: mediaType)
                         : Descriptor(mediaType: mediaType, digest: Digest.sha256(of: blob), size: Int64(blob.count))
        var descriptor = real
        if let digest { descriptor.digest = digest }
        if let size { descriptor.size = size }
        let layer = Layer(descriptor: descriptor, diffID: diffID ?? real.digest)
        layers.append(layer)
        return layer
    }

    /// Writes config and manifest for the layers added so far and tags the manifest.
    /// A Docker-style image (every layer of docker media type) gets Docker manifest and
    /// config media types too, as `docker save` writes them.
    @discardableResult
    public func write(tag: String, config overrides: ConfigOverrides = .init(), docker: Bool? = nil) throws -> Descriptor {
        let isDocker = docker ?? (!layers.isEmpty && layers.allSatisfy { $0.descriptor.mediaType.hasPrefix("application/vnd.docker.") })
        let created = "2024-01-02T03:04:05Z"
        let container = ContainerConfig(user: overrides.user, env: overrides.env, entrypoint: overrides.entrypoint,
                                        cmd: overrides.cmd, workingDir: overrides.workingDir, labels: overrides.labels)
        let config = ImageConfig(
            created: created, architecture: ImageBuilder.hostArchitecture, os: "linux", config: container,
            rootfs: .init(diffIDs: layers.map(\.diffID)),
            history: layers.indices.map { .init(created: created, createdBy: "ImageBuilder layer \($0)") })
        let configDescriptor = try writer.writeJSON(config, mediaType: isDocker ? MediaType.dockerConfig : MediaType.ociConfig)
        let manifest = Manifest(mediaType: isDocker ? MediaType.dockerManifest : MediaType.ociManifest,
                                config: configDescriptor, layers: layers.map(\.descriptor))
        let manifestDescriptor = try writer.writeJSON(manifest, mediaType: manifest.mediaType!)
        try writer.tag(manifestDescriptor, as: tag)
        return manifestDescriptor
    }

    /// `LAYOUT:TAG`, the reference `strata` and `umoci` take.
    public func reference(_ tag: String) -> String { "\(layout):\(tag)" }

    /// Path of a blob in the layout.
    public func blobPath(_ digest: Digest) -> String { "\(layout)/blobs/\(digest.algorithm)/\(digest.hex)" }

    // MARK: - Media types and compression

    public static func mediaType(_ compression: Compression, _ style: MediaTypeStyle) -> String {
        switch (style, compression.family) {
        case (.oci, "tar"): MediaType.ociLayerTar
        case (.oci, "gzip"): MediaType.ociLayerGzip
        case (.oci, _): MediaType.ociLayerZstd
        case (.nondistributable, "tar"): MediaType.ociLayerNondistributableTar
        case (.nondistributable, "gzip"): MediaType.ociLayerNondistributableGzip
        case (.nondistributable, _): MediaType.ociLayerNondistributableZstd
        case (.docker, "tar"): MediaType.dockerLayerTar
        case (.docker, "gzip"): MediaType.dockerLayerGzip
        case (.docker, _): MediaType.dockerLayerZstd
        }
    }

    public static func compress(_ tar: [UInt8], _ compression: Compression) throws -> [UInt8] {
        switch compression {
        case .none: return tar
        case .gzip: return try pipe(tar, Mounts.tool("gzip"), ["-c", "-n", "-6"])
        case .zstd: return try pipe(tar, Mounts.tool("zstd"), ["-c", "-q", "-3", "--no-progress"])
        case .gzipMultiMember(let chunk):
            return try chunks(tar, chunk).flatMap { try pipe($0, Mounts.tool("gzip"), ["-c", "-n", "-6"]) }
        case .zstdMultiFrame(let chunk):
            return try chunks(tar, chunk).flatMap { try pipe($0, Mounts.tool("zstd"), ["-c", "-q", "-3", "--no-progress"]) }
        }
    }

    private static func chunks(_ bytes: [UInt8], _ size: Int) -> [[UInt8]] {
        precondition(size > 0)
        return stride(from: 0, to: max(bytes.count, 1), by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) }
    }

    /// Runs `program ARGS FILE` on a scratch copy of `input` (Command gives children no stdin).
    static func pipe(_ input: [UInt8], _ program: String, _ args: [String]) throws -> [UInt8] {
        let scratch = try TempDirectory(prefix: "strata-builder-")
        defer { withExtendedLifetime(scratch) {} }
        let file = scratch.child("input")
        try FileIO.writeAtomically(file, input)
        return try Command.check(program, args + [file], timeout: 300).stdout
    }

    static var hostArchitecture: String {
        var u = utsname()
        uname(&u)
        let machine = withUnsafeBytes(of: u.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        switch machine {
        case "x86_64": return "amd64"
        case "aarch64": return "arm64"
        default: return machine
        }
    }
}
