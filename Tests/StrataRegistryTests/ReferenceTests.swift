import StrataOCI
import StrataRegistry
import Testing

@Suite struct ReferenceTests {
    @Test func parsesHostPortRepositoryTagAndDigest() throws {
        let a = try #require(try RegistryReference.parse("docker://127.0.0.1:5000/library/app:v1"))
        #expect(a.host == "127.0.0.1:5000")
        #expect(a.repository == "library/app")
        #expect(a.tag == "v1")
        #expect(a.digest == nil)
        #expect(a.description == "docker://127.0.0.1:5000/library/app:v1")

        let b = try #require(try RegistryReference.parse("docker://registry.example/app"))
        #expect(b.host == "registry.example")
        #expect(b.tag == "latest")
        #expect(b.manifestReference == "latest")

        let hex = String(repeating: "ab", count: 32)
        let c = try #require(try RegistryReference.parse("docker://localhost:5000/a/b/c@sha256:\(hex)"))
        #expect(c.tag == nil)
        #expect(c.digest == Digest(sha256Hex: hex))
        #expect(c.manifestReference == "sha256:\(hex)")
        #expect(c.description == "docker://localhost:5000/a/b/c@sha256:\(hex)")

        let d = try #require(try RegistryReference.parse("docker://host:1/a-b.c__d:t_1.x-y@sha256:\(hex)"))
        #expect(try RegistryReference.parse("docker://[::1]:5000/app")?.host == "[::1]:5000")
        #expect(try RegistryReference.parse("docker://localhost/app")?.host == "localhost")
        #expect(d.repository == "a-b.c__d")
        #expect(d.tag == "t_1.x-y")
        #expect(d.digest != nil)
    }

    @Test func localReferencesAreNotRegistryReferences() throws {
        for text in ["layout", "layout:tag", "oci:dir:tag", "oci-archive:x.tar", "/abs/path:tag", "docker:/x/y", "docker-archive:f.tar"] {
            #expect(try RegistryReference.parse(text) == nil, "\(text)")
        }
    }

    @Test(arguments: [
        "docker://", "docker://host", "docker:///repo", "docker://h.x/", "docker://h.x/Repo",
        "docker://h.x/repo:", "docker://h.x/repo:-bad", "docker://h.x/repo@sha256:abc",
        "docker://h.x/repo@md5:0123", "docker://ho st/repo", "docker://host:99999/repo",
        "docker://host:port/repo", "docker://h.x/a//b", "docker://h.x/repo/", "docker://h.x/-repo",
        "docker://library/alpine",
    ])
    func malformedReferencesFailWithOneLine(_ text: String) throws {
        let error = try #require(throws: RegistryError.self) { try RegistryReference.parse(text) }
        #expect(error.kind == .invalidInput)
        #expect(error.description.contains(text))
        #expect(!error.description.contains("\n"))
    }

    @Test func registryTransportReferenceIsRefusedByTheLayoutResolver() throws {
        #expect(ImageTransport.registry.rawValue == "docker")
        var reference = ImageReference(layoutPath: "docker://h/r:t")
        reference.transport = .registry
        #expect(reference.description == "docker://h/r:t")
    }
}
