import Testing
@testable import StrataOCI
import StrataSystem

private let hex64 = String(repeating: "0123456789abcdef", count: 4)

@Test func referenceForms() throws {
    #expect(try ImageReference(parsing: "/no/such/img") == ImageReference(layoutPath: "/no/such/img"))
    #expect(try ImageReference(parsing: "/no/such/img:v1.2") == ImageReference(layoutPath: "/no/such/img", tag: "v1.2"))
    #expect(try ImageReference(parsing: "img:latest") == ImageReference(layoutPath: "img", tag: "latest"))
    let byDigest = try ImageReference(parsing: "/no/such/img@sha256:\(hex64)")
    #expect(byDigest == ImageReference(layoutPath: "/no/such/img", digest: Digest(sha256Hex: hex64)))
    #expect(byDigest.description == "/no/such/img@sha256:\(hex64)")
    // A ':' before the last '/' belongs to the directory.
    #expect(try ImageReference(parsing: "/no/such:dir/img") == ImageReference(layoutPath: "/no/such:dir/img"))
    #expect(try ImageReference(parsing: "/no/such:dir/img:t") == ImageReference(layoutPath: "/no/such:dir/img", tag: "t"))
    // An '@' not followed by a digest is part of the path.
    #expect(try ImageReference(parsing: "/no/such/my@img:t") == ImageReference(layoutPath: "/no/such/my@img", tag: "t"))
}

@Test func existingDirectoryWithColonIsADirectory() throws {
    try withTempDir { dir in
        let odd = "\(dir)/img:v1"
        try FileIO.makeDirectories(odd)
        #expect(try ImageReference(parsing: odd) == ImageReference(layoutPath: odd))
        #expect(try ImageReference(parsing: "\(odd):v2") == ImageReference(layoutPath: odd, tag: "v2"))
        let at = "\(dir)/x@sha256:abc"
        try FileIO.makeDirectories(at)
        #expect(try ImageReference(parsing: at) == ImageReference(layoutPath: at))
    }
}

@Test func badReferencesNameTheReference() {
    for text in ["/img@sha256:abc", "/img@sha256:\(hex64.uppercased())"] {
        let message = errorMessage { _ = try ImageReference(parsing: text) }
        #expect(message.hasPrefix("image reference \"\(text)\""), "\(message)")
    }
    #expect(errorMessage { _ = try ImageReference(parsing: "/no/such/img:") }.contains("empty tag"))
    #expect(errorMessage { _ = try ImageReference(parsing: ":tag") }.contains("no layout directory"))
    #expect(errorMessage { _ = try ImageReference(parsing: "") } == "empty image reference")
}
