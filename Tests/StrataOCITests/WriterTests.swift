import Foundation
import Synchronization
import Testing
@testable import StrataOCI
import StrataSystem

@Test func writerCreatesAndReusesALayout() throws {
    try withTempDir { dir in
        let path = "\(dir)/new/layout"
        let t = try TestLayout(path)
        #expect(try t.read("oci-layout") == #"{"imageLayoutVersion":"1.0.0"}"#)
        #expect(try t.read("index.json") == #"{"manifests":[],"mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}"#)
        #expect(FileIO.isDirectory("\(path)/blobs/sha256"))
        let m = try t.image()
        try t.writer.tag(m, as: "v1")
        // Reopening keeps what is there.
        _ = try ImageLayoutWriter(path: path + "/")
        #expect(try t.layout.tags() == ["v1"])
        // A directory holding other things is not turned into a layout.
        try FileIO.writeAtomically("\(dir)/other", [1])
        let message = errorMessage { _ = try ImageLayoutWriter(path: dir) }
        #expect(message.hasPrefix("\(dir): not empty and has no oci-layout"))
    }
}

@Test func blobRoundTripFromBytesAndFile() throws {
    try withTempDir { dir in
        let t = try TestLayout("\(dir)/layout")
        let bytes = (0..<(3 << 20) + 17).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        let fromBytes = try t.writer.writeBlob(bytes, mediaType: MediaType.ociLayerTar)
        #expect(fromBytes.digest == Digest.sha256(of: bytes))
        #expect(fromBytes.size == Int64(bytes.count))
        try FileIO.writeAtomically("\(dir)/source", bytes)
        let fromFile = try t.writer.writeBlob(fromFile: "\(dir)/source", mediaType: MediaType.ociLayerTar)
        #expect(fromFile == fromBytes)
        #expect(try t.layout.readVerifiedBlob(fromFile) == bytes)
        // A different blob from a file lands under its own digest, without temporary leftovers.
        try FileIO.writeAtomically("\(dir)/source2", [1, 2, 3])
        let small = try t.writer.writeBlob(fromFile: "\(dir)/source2", mediaType: "x")
        #expect(try t.layout.readVerifiedBlob(small) == [1, 2, 3])
        let names = try FileManagerShim.list("\(dir)/layout/blobs/sha256")
        #expect(names.sorted() == [fromBytes.digest.hex, small.digest.hex].sorted())
        let missing = errorMessage { _ = try t.writer.writeBlob(fromFile: "\(dir)/absent", mediaType: "x") }
        #expect(missing.hasPrefix("\(dir)/absent: cannot open"))
    }
}

@Test func outputIsDeterministic() throws {
    try withTempDir { dir in
        func build(_ path: String) throws -> (String, [String]) {
            let t = try TestLayout(path)
            let x86 = try t.image("linux/amd64")
            let arm = try t.image("linux/arm64/v8")
            let index = try t.index([x86, arm])
            try t.writer.tag(index, as: "latest")
            return (try t.read("index.json"), try FileManagerShim.list("\(path)/blobs/sha256").sorted())
        }
        let a = try build("\(dir)/a")
        let b = try build("\(dir)/b")
        #expect(a.0 == b.0)
        #expect(a.1 == b.1)
        // Sorted keys, '/' not escaped.
        #expect(a.0.contains(#""mediaType":"application/vnd.oci.image.index.v1+json""#))
        #expect(!a.0.contains(#"\/"#))
        let manifestJSON = String(decoding: try JSONCoding.encode(Manifest(
            config: Descriptor(mediaType: MediaType.ociConfig, digest: Digest.sha256(of: []), size: 2,
                               annotations: ["b": "2", "a": "1"]),
            layers: [])), as: UTF8.self)
        #expect(manifestJSON == #"{"config":{"annotations":{"a":"1","b":"2"},"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","mediaType":"application/vnd.oci.image.config.v1+json","size":2},"layers":[],"mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2}"#)
    }
}

@Test func tagReplacesTheEntryWithThatName() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let a = try t.image(seed: "a")
        let b = try t.image(seed: "b")
        let c = try t.image(seed: "c")
        try t.writer.tag(a, as: "one")
        try t.writer.tag(b, as: "two")
        try t.writer.tag(c, as: "one")   // replaced in place, order kept
        var index = try t.layout.index()
        #expect(index.manifests.map(\.refName) == ["one", "two"])
        #expect(index.manifests.map(\.digest) == [c.digest, b.digest])
        #expect(index.manifests[0].platform == c.platform)

        try t.writer.addToIndex(a)
        try t.writer.addToIndex(a)       // identical entry not duplicated
        index = try t.layout.index()
        #expect(index.manifests.count == 3)
        #expect(try t.layout.tags() == ["one", "two"])
        #expect(try ImageResolver.resolve(reference: "\(dir):one").manifestDigest == c.digest)
    }
}

@Test func configRoundTripKeepsModelledFields() throws {
    let config = ImageConfig(created: "2024-05-01T00:00:00Z", author: "me", architecture: "arm64", os: "linux",
                             variant: "v8",
                             config: ContainerConfig(user: "1000:1000", exposedPorts: ["80/tcp": EmptyObject()],
                                                     env: ["A=1"], entrypoint: ["/e"], cmd: ["c"],
                                                     volumes: ["/data": EmptyObject()], workingDir: "/w",
                                                     labels: ["l": "v"], stopSignal: "SIGINT"),
                             rootfs: .init(diffIDs: [Digest.sha256(of: [1])]),
                             history: [.init(createdBy: "RUN x", emptyLayer: false)])
    let bytes = try JSONCoding.encode(config)
    #expect(try JSONCoding.decode(ImageConfig.self, from: bytes, what: "c") == config)
    let text = String(decoding: bytes, as: UTF8.self)
    #expect(text.contains(#""ExposedPorts":{"80/tcp":{}}"#))
    #expect(text.contains(#""diff_ids":["sha256:"#))
    #expect(text.contains(#""created_by":"RUN x""#))
}

@Test func concurrentTagsAreNotLost() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let m = try t.image()
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 16) { i in
            do { try ImageLayoutWriter(path: dir).tag(m, as: "t\(i)") } catch { failures.withLock { $0 += 1 } }
        }
        #expect(failures.withLock { $0 } == 0)
        #expect(try Set(t.layout.tags()) == Set((0..<16).map { "t\($0)" }))
    }
}
