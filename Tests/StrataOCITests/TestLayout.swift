import Foundation
import StrataOCI
import StrataSystem

/// A unique directory under /tmp, removed when `body` returns.
func withTempDir<T>(_ body: (String) throws -> T) throws -> T {
    var template = Array("/tmp/strata-oci-test-XXXXXX".utf8CString)
    guard let made = mkdtemp(&template) else { throw OCIError("mkdtemp failed") }
    let dir = String(cString: made)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try body(dir)
}

/// Builds images in a layout, in code, for the tests.
struct TestLayout {
    let path: String
    let writer: ImageLayoutWriter

    init(_ path: String) throws {
        self.path = path
        writer = try ImageLayoutWriter(path: path)
    }

    var layout: ImageLayout { get throws { try ImageLayout(path: path) } }

    /// Writes layers, a config and a manifest; returns the manifest descriptor (with platform).
    @discardableResult
    func image(_ platform: String = "linux/amd64", layers: Int = 2, docker: Bool = false,
               layerMediaType: String? = nil, diffIDCount: Int? = nil, seed: String = "") throws -> Descriptor {
        let p = try Platform(parsing: platform)
        var layerDescriptors: [Descriptor] = []
        var diffIDs: [Digest] = []
        for i in 0..<layers {
            let bytes = Array("layer \(i) of \(platform) \(seed)".utf8)
            let type = layerMediaType ?? (docker ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip)
            layerDescriptors.append(try writer.writeBlob(bytes, mediaType: type))
            diffIDs.append(Digest.sha256(of: bytes + [0]))
        }
        while diffIDs.count > (diffIDCount ?? layers) { diffIDs.removeLast() }
        while diffIDs.count < (diffIDCount ?? layers) { diffIDs.append(Digest.sha256(of: [UInt8(diffIDs.count)])) }
        let config = ImageConfig(created: "2024-01-01T00:00:00Z", architecture: p.architecture, os: p.os,
                                 variant: p.variant,
                                 config: ContainerConfig(env: ["PATH=/usr/bin:/bin"], cmd: ["/bin/sh"], workingDir: "/"),
                                 rootfs: .init(diffIDs: diffIDs))
        let configDescriptor = try writer.writeJSON(config, mediaType: docker ? MediaType.dockerConfig : MediaType.ociConfig)
        let manifest = Manifest(mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest,
                                config: configDescriptor, layers: layerDescriptors)
        var d = try writer.writeJSON(manifest, mediaType: docker ? MediaType.dockerManifest : MediaType.ociManifest)
        d.platform = p
        return d
    }

    /// Writes an image index over `manifests`; returns its descriptor.
    func index(_ manifests: [Descriptor], docker: Bool = false) throws -> Descriptor {
        let type = docker ? MediaType.dockerManifestList : MediaType.ociIndex
        return try writer.writeJSON(ImageIndex(mediaType: type, manifests: manifests), mediaType: type)
    }

    func write(_ relative: String, _ text: String) throws {
        try FileIO.writeAtomically("\(path)/\(relative)", Array(text.utf8))
    }

    func read(_ relative: String) throws -> String {
        String(decoding: try FileIO.readAll("\(path)/\(relative)"), as: UTF8.self)
    }
}

/// The OCIError message of a failing call (or a marker when it did not fail as an OCIError).
func errorMessage(_ body: () throws -> Void) -> String {
    do {
        try body()
        return "<no error>"
    } catch let error as OCIError {
        return error.message
    } catch {
        return "<not an OCIError: \(error)>"
    }
}

func isOneLine(_ s: String) -> Bool { !s.contains(where: \.isNewline) }

enum FileManagerShim {
    static func list(_ dir: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir)
    }
}
