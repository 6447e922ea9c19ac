import Testing
import StrataOCI
import StrataSystem
import StrataTar
import StrataTestSupport

/// skopeo's transport names for archives, and the member listing an archive is read through.
@Test func archiveTransports() throws {
    func ref(_ text: String) throws -> ImageReference { try ImageReference(parsing: text) }
    var oci = ImageReference(layoutPath: "/no/img.tar", tag: "v1")
    oci.transport = .ociArchive
    #expect(try ref("oci-archive:/no/img.tar:v1") == oci)
    #expect(try ref("oci-archive:/no/img.tar:v1").description == "oci-archive:/no/img.tar:v1")
    var docker = ImageReference(layoutPath: "/no/img.tar", tag: "example.com:5000/app:1.0")
    docker.transport = .dockerArchive
    // The path ends at the first ':'; REPO:TAG may hold more.
    #expect(try ref("docker-archive:/no/img.tar:example.com:5000/app:1.0") == docker)
    #expect(try ref("docker-archive:/no/img.tar").tag == nil)
    #expect(try ref("oci:/no/dir:tag") == ImageReference(layoutPath: "/no/dir", tag: "tag"))
    let digest = "sha256:" + String(repeating: "a", count: 64)
    #expect(try ref("oci-archive:/no/img.tar@\(digest)").digest?.description == digest)
    #expect(throws: OCIError.self) { try ref("oci-archive:") }
    #expect(throws: OCIError.self) { try ref("docker-archive:/no/img.tar:") }
}

@Test func archiveMembersAreListedFromHeaders() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let long = String(repeating: "d", count: 120) + "/member"
    let tar = try TarWriter.archive([Items.file("oci-layout", "{}"), Items.file("./index.json", "[]"),
                                     Items.file(long, "long name"), Items.symlink("link", to: "index.json"),
                                     Items.dir("blobs")], format: .pax)
    try FileIO.writeAtomically(temp.child("a.tar"), tar)
    let archive = try ImageArchive(path: temp.child("a.tar"))
    #expect(Set(archive.members.keys) == ["oci-layout", "index.json", long])
    let member = try archive.member(long)
    #expect(try archive.read(member) == Array("long name".utf8))
    #expect(try archive.member("link") == archive.member("index.json"))
    #expect(throws: OCIError.self) { try archive.member("missing") }
    // Cut inside the long member's data: truncated, naming the member.
    try FileIO.writeAtomically(temp.child("cut.tar"), Array(tar[..<(Int(member.offset) + 4)]))
    let error = try #require(throws: OCIError.self) { try ImageArchive(path: temp.child("cut.tar")) }
    #expect(error.message.contains("truncated") && error.message.contains("member"), "\(error.message)")
}
