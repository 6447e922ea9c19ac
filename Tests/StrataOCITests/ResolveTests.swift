import Testing
@testable import StrataOCI

private let amd64 = Platform(os: "linux", architecture: "amd64")

@Test func resolvesTheOnlyManifest() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let m = try t.image(layers: 3)
        try t.writer.addToIndex(m)
        let image = try ImageResolver.resolve(reference: dir, platform: amd64)
        #expect(image.manifestDigest == m.digest)
        #expect(image.layoutPath == dir)
        #expect(image.layers.count == 3)
        #expect(image.layers.allSatisfy { $0.format == .gzip })
        #expect(image.layers.map(\.diffID) == image.config.rootfs.diffIDs)
        #expect(image.config.config?.cmd == ["/bin/sh"])
        #expect(image.platform == amd64)
        #expect(Digest.sha256(of: image.configBytes) == image.configDescriptor.digest)
        #expect(Digest.sha256(of: image.manifestBytes) == m.digest)
        #expect(image.rawJSON == image.configBytes)
        // Without a platform the single manifest is taken whatever the host.
        #expect(try ImageResolver.resolve(reference: dir).manifestDigest == m.digest)
    }
}

@Test func resolvesByTagAndByDigest() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let a = try t.image(seed: "a")
        let b = try t.image(seed: "b")
        try t.writer.tag(a, as: "a")
        try t.writer.tag(b, as: "b")
        #expect(try t.layout.tags() == ["a", "b"])
        #expect(try ImageResolver.resolve(reference: "\(dir):a", platform: amd64).manifestDigest == a.digest)
        #expect(try ImageResolver.resolve(reference: "\(dir):b", platform: amd64).manifestDigest == b.digest)
        #expect(try ImageResolver.resolve(reference: "\(dir)@\(b.digest)", platform: amd64).manifestDigest == b.digest)

        let none = errorMessage { _ = try ImageResolver.resolve(reference: "\(dir):c") }
        #expect(none == "\(dir):c: no tag \"c\" in \(dir)/index.json (tags: a, b)")
        let missing = Digest.sha256(of: [1, 2, 3])
        let noDigest = errorMessage { _ = try ImageResolver.resolve(reference: "\(dir)@\(missing)") }
        #expect(noDigest == "\(dir)@\(missing): no manifest with digest \(missing) in \(dir)")
    }
}

@Test func severalManifestsWithoutTagListsTheTags() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        try t.writer.tag(try t.image(seed: "1"), as: "one")
        try t.writer.tag(try t.image(seed: "2"), as: "two")
        try t.writer.addToIndex(try t.image(seed: "3"))
        let message = errorMessage { _ = try ImageResolver.resolve(reference: dir) }
        #expect(isOneLine(message))
        #expect(message.contains("lists 3 manifests"))
        #expect(message.contains("tags: one, two"))
    }
}

@Test func nestedIndexSelectsThePlatform() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let x86 = try t.image("linux/amd64")
        var arm64 = try t.image("linux/arm64/v8")
        arm64.platform = Platform(os: "linux", architecture: "arm64")   // indexes often omit v8
        let armv7 = try t.image("linux/arm/v7")
        let armv6 = try t.image("linux/arm/v6")
        var attestation = try t.image("linux/amd64", seed: "att")
        attestation.platform = Platform(os: "unknown", architecture: "unknown")
        let inner = try t.index([armv6, armv7])
        let outer = try t.index([attestation, x86, arm64, inner])
        try t.writer.tag(outer, as: "multi")

        func resolve(_ p: String) throws -> ResolvedImage {
            try ImageResolver.resolve(reference: "\(dir):multi", platform: try Platform(parsing: p))
        }
        #expect(try resolve("linux/amd64").manifestDigest == x86.digest)
        #expect(try resolve("linux/arm64").manifestDigest == arm64.digest)
        #expect(try resolve("linux/arm64/v8").manifestDigest == arm64.digest)
        #expect(try resolve("linux/arm64/v8").platform.description == "linux/arm64/v8")
        #expect(try resolve("linux/arm/v7").manifestDigest == armv7.digest)
        let v6 = try resolve("linux/arm/v6")
        #expect(v6.manifestDigest == armv6.digest)
        #expect(v6.indexChain == [outer.digest, inner.digest])

        let message = errorMessage { _ = try resolve("linux/riscv64") }
        #expect(message == "image index \(outer.digest) in \(dir): no manifest for platform linux/riscv64 (available: linux/amd64, linux/arm64, linux/arm/v6, linux/arm/v7)")
        // A nested platform manifest can be named by digest.
        #expect(try ImageResolver.resolve(reference: "\(dir)@\(armv6.digest)").manifestDigest == armv6.digest)
    }
}

@Test func flatMultiPlatformIndexJSON() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let x86 = try t.image("linux/amd64")
        let arm = try t.image("linux/arm64/v8")
        try t.writer.addToIndex(x86)
        try t.writer.addToIndex(arm)
        let image = try ImageResolver.resolve(reference: dir, platform: try Platform(parsing: "linux/arm64"))
        #expect(image.manifestDigest == arm.digest)
    }
}

@Test func explicitPlatformMustMatchASingleManifest() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let m = try t.image("linux/arm64/v8")
        try t.writer.addToIndex(m)
        let message = errorMessage { _ = try ImageResolver.resolve(reference: dir, platform: amd64) }
        #expect(message == "manifest \(m.digest) in \(dir): image is for linux/arm64/v8, not linux/amd64")
    }
}

@Test func dockerSchema2Images() throws {
    try withTempDir { dir in
        let t = try TestLayout(dir)
        let x86 = try t.image("linux/amd64", docker: true)
        let arm = try t.image("linux/arm64/v8", docker: true)
        let list = try t.index([x86, arm], docker: true)
        try t.writer.tag(list, as: "docker")
        let image = try ImageResolver.resolve(reference: "\(dir):docker", platform: try Platform(parsing: "linux/arm64/v8"))
        #expect(image.manifestDigest == arm.digest)
        #expect(image.manifest.mediaType == MediaType.dockerManifest)
        #expect(image.configDescriptor.mediaType == MediaType.dockerConfig)
        #expect(image.layers.map(\.format) == [.gzip, .gzip])

        let plain = try t.image("linux/amd64", docker: true, layerMediaType: MediaType.dockerLayerTar, seed: "plain")
        try t.writer.tag(plain, as: "plain")
        #expect(try ImageResolver.resolve(reference: "\(dir):plain").layers.map(\.format) == [.tar, .tar])
    }
}

@Test func dockerConfigDecodesLeniently() throws {
    // A config as `docker save` writes it: nulls, extra keys, Hostname.
    let json = """
    {"architecture":"amd64","os":"linux","container":"abc","docker_version":"24.0.7",
     "config":{"Hostname":"h","Domainname":"","User":"","AttachStdin":false,"ExposedPorts":{"80/tcp":{}},
       "Env":["A=1"],"Cmd":null,"Entrypoint":["/e"],"Volumes":null,"WorkingDir":"/w","Labels":{"k":"v"},
       "OnBuild":null,"StopSignal":"SIGTERM","ArgsEscaped":true},
     "rootfs":{"type":"layers","diff_ids":[]},
     "history":[{"created":"2024-01-01T00:00:00Z","created_by":"/bin/sh -c #(nop)","empty_layer":true}]}
    """
    let config = try JSONCoding.decode(ImageConfig.self, from: Array(json.utf8), what: "config")
    #expect(config.config?.hostname == "h")
    #expect(config.config?.exposedPorts?.keys.sorted() == ["80/tcp"])
    #expect(config.config?.cmd == nil)
    #expect(config.config?.argsEscaped == true)
    #expect(config.history?.first?.emptyLayer == true)
    #expect(config.history?.first?.createdBy == "/bin/sh -c #(nop)")
}
