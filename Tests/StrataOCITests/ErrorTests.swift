import Foundation
import Testing
@testable import StrataOCI
import StrataSystem

/// Every error is one line and names the file, digest or reference at fault.
private func expectError(_ expected: [String], _ body: () throws -> Void,
                         sourceLocation: SourceLocation = #_sourceLocation) {
    let message = errorMessage(body)
    #expect(isOneLine(message), "not one line: \(message)", sourceLocation: sourceLocation)
    for part in expected {
        #expect(message.contains(part), "\"\(message)\" lacks \"\(part)\"", sourceLocation: sourceLocation)
    }
}

@Test func badOCILayoutFile() throws {
    try withTempDir { dir in
        expectError(["\(dir)/none", "no such directory"]) { _ = try ImageLayout(path: "\(dir)/none") }
        expectError(["\(dir)/oci-layout", "missing"]) { _ = try ImageLayout(path: dir) }
        try FileIO.writeAtomically("\(dir)/oci-layout", Array("{\"imageLayoutVersion\":\"2.0.0\"}".utf8))
        expectError(["\(dir)/oci-layout", "\"2.0.0\"", "not supported"]) { _ = try ImageLayout(path: dir) }
        try FileIO.writeAtomically("\(dir)/oci-layout", Array("{\"imageLayoutVersion\":1}".utf8))
        expectError(["\(dir)/oci-layout", "imageLayoutVersion", "wrong type"]) { _ = try ImageLayout(path: dir) }
        try FileIO.writeAtomically("\(dir)/oci-layout", Array("{}".utf8))
        expectError(["\(dir)/oci-layout", "missing field \"imageLayoutVersion\""]) { _ = try ImageLayout(path: dir) }
        try FileIO.writeAtomically("\(dir)/oci-layout", Array("not json".utf8))
        expectError(["\(dir)/oci-layout", "not valid JSON"]) { _ = try ImageLayout(path: dir) }
        // The writer refuses the same file rather than overwrite it.
        expectError(["\(dir)/oci-layout", "not valid JSON"]) { _ = try ImageLayoutWriter(path: dir) }
    }
}

@Test func indexJSONNotJSON() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        try t.write("index.json", "{\"schemaVersion\": 2, \"manifests\": [\n")
        expectError(["\(dir)/index.json", "not valid JSON"]) { _ = try t.layout.index() }
        expectError(["\(dir)/index.json"]) { _ = try ImageResolver.resolve(reference: dir) }
        try t.write("index.json", "{\"schemaVersion\": 2, \"manifests\": {}}")
        expectError(["\(dir)/index.json", "\"manifests\"", "wrong type"]) { _ = try t.layout.index() }
        try t.write("index.json", "{\"schemaVersion\": 2, \"manifests\": [{\"mediaType\": \"x\", \"size\": 1, \"digest\": \"sha256:zz\"}]}")
        expectError(["\(dir)/index.json", "manifests[0].digest", "sha256:zz"]) { _ = try t.layout.index() }
        try t.write("index.json", "{\"schemaVersion\": 1, \"manifests\": []}")
        expectError(["\(dir)/index.json", "schemaVersion 1"]) { _ = try t.layout.index() }
        unlink("\(dir)/index.json")
        expectError(["\(dir)/index.json", "missing"]) { _ = try t.layout.index() }
        try t.write("index.json", "{\"schemaVersion\": 2, \"manifests\": []}")
        expectError(["\(dir)/index.json", "lists no manifests"]) { _ = try ImageResolver.resolve(reference: dir) }
    }
}

@Test func missingWrongAndShortBlobs() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let m = try t.image(layers: 1)
        try t.writer.addToIndex(m)
        let layout = try t.layout
        let file = layout.blobPath(m.digest)
        let good = try FileIO.readAll(file)

        // Same size, other content.
        var bad = good
        bad[bad.count - 2] ^= 1
        try FileIO.writeAtomically(file, bad)
        expectError(["blob \(m.digest) in \(dir)", "content has digest sha256:\(Digest.sha256(of: bad).hex)"]) {
            _ = try ImageResolver.resolve(reference: dir)
        }

        try FileIO.writeAtomically(file, good + [0x20])
        expectError(["blob \(m.digest) in \(dir)", "size \(good.count + 1) does not match descriptor size \(good.count)"]) {
            _ = try layout.readVerifiedBlob(m)
        }
        try FileIO.writeAtomically(file, good + [0x20])
        expectError(["blob \(m.digest) in \(dir)", "size"]) { try layout.verifyBlob(m) }

        unlink(file)
        expectError(["blob \(m.digest) in \(dir)", "missing", file]) { _ = try ImageResolver.resolve(reference: dir) }

        let sha512 = Descriptor(mediaType: MediaType.ociManifest,
                                digest: try Digest(parsing: "sha512:" + String(repeating: "a", count: 128)), size: 1)
        expectError(["blob \(sha512.digest) in \(dir)", "only sha256"]) { _ = try layout.readVerifiedBlob(sha512) }
    }
}

@Test func verifyBlobStreamsLayers() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let good = [UInt8](repeating: 7, count: 3 << 20)
        let d = try t.writer.writeBlob(good, mediaType: MediaType.ociLayerTar)
        try t.layout.verifyBlob(d)
        // One byte changed deep in the stream, size unchanged: only the streamed hash can tell.
        var bad = good
        bad[2 << 20] ^= 1
        let file = try t.layout.blobPath(d.digest)
        try FileIO.writeAtomically(file, bad)
        expectError(["blob \(d.digest) in \(dir)", "content has digest sha256:\(Digest.sha256(of: bad).hex)"]) {
            try t.layout.verifyBlob(d)
        }
    }
}

@Test func unknownLayerMediaType() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let m = try t.image(layers: 2, layerMediaType: "application/vnd.example.layer.v1.tar+lz4")
        try t.writer.addToIndex(m)
        let manifest = try JSONCoding.decode(Manifest.self, from: try t.layout.readVerifiedBlob(m), what: "m")
        expectError(["manifest \(m.digest) in \(dir)", "layer 0 (\(manifest.layers[0].digest))",
                     "unknown layer media type \"application/vnd.example.layer.v1.tar+lz4\""]) {
            _ = try ImageResolver.resolve(reference: dir)
        }
    }
}

@Test func layerCountMustEqualDiffIDs() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let m = try t.image(layers: 3, diffIDCount: 2)
        try t.writer.addToIndex(m)
        expectError(["manifest \(m.digest) in \(dir)", "3 layers", "2 rootfs.diff_ids"]) {
            _ = try ImageResolver.resolve(reference: dir)
        }
    }
}

@Test func wrongTypeInConfigNamesTheField() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let config = try t.writer.writeBlob(Array(#"""
            {"architecture":"amd64","os":"linux","config":{"Env":"PATH=/bin"},"rootfs":{"type":"layers","diff_ids":[]},"unknown":{"x":1}}
            """#.utf8), mediaType: MediaType.ociConfig)
        let m = try t.writer.writeJSON(Manifest(config: config, layers: []), mediaType: MediaType.ociManifest)
        try t.writer.addToIndex(m)
        expectError(["config \(config.digest) in \(dir)", "field \"config.Env\"", "wrong type"]) {
            _ = try ImageResolver.resolve(reference: dir)
        }
    }
}

@Test func manifestAndConfigKindsAreChecked() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let blob = try t.writer.writeBlob(Array("{}".utf8), mediaType: "application/vnd.oci.empty.v1+json")
        let artifact = try t.writer.writeJSON(Manifest(config: blob, layers: []), mediaType: MediaType.ociManifest)
        try t.writer.tag(artifact, as: "artifact")
        expectError(["manifest \(artifact.digest) in \(dir)", "application/vnd.oci.empty.v1+json", "not an image config"]) {
            _ = try ImageResolver.resolve(reference: "\(dir):artifact")
        }
        var schema1 = blob
        schema1.mediaType = MediaType.dockerManifestSchema1Signed
        try t.writer.tag(schema1, as: "old")
        expectError(["manifest \(blob.digest) in \(dir)", "schema 1"]) { _ = try ImageResolver.resolve(reference: "\(dir):old") }
        var notJSON = try t.writer.writeBlob(Array("nope".utf8), mediaType: MediaType.ociIndex)
        notJSON.platform = nil
        try t.writer.tag(notJSON, as: "garbled")
        expectError(["image index \(notJSON.digest) in \(dir)", "not valid JSON"]) {
            _ = try ImageResolver.resolve(reference: "\(dir):garbled")
        }
    }
}
