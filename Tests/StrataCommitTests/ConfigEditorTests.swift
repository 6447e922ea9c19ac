import Testing
@testable import StrataCommit
import StrataOCI

@Suite struct ConfigEditorTests {
    static let base = #"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Unmodelled":{"x":[1,2.5,true,null]}},"rootfs":{"type":"layers","diff_ids":["sha256:\#(String(repeating: "a", count: 64))"]},"history":[{"created_by":"base"}],"vendor.key":42}"#
    static let diffID = Digest(sha256Hex: String(repeating: "b", count: 64))

    @Test func appendsDiffIDHistoryAndCreatedKeepingUnknownKeys() throws {
        let bytes = try ConfigEditor.committed(base: Array(Self.base.utf8), diffID: Self.diffID,
                                               created: "2024-01-02T03:04:05Z", message: "msg")
        let config = try JSONCoding.decode(ImageConfig.self, from: bytes, what: "new config")
        #expect(config.rootfs.diffIDs.map(\.hex) == [String(repeating: "a", count: 64), String(repeating: "b", count: 64)])
        #expect(config.history?.count == 2)
        #expect(config.history?.last?.comment == "msg")
        #expect(config.history?.last?.createdBy == "strata commit")
        #expect(config.created == "2024-01-02T03:04:05Z")
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""Unmodelled":{"x":[1,2.5,true,null]}"#))
        #expect(text.contains(#""vendor.key":42"#))
    }

    @Test func sameInputSameBytes() throws {
        let a = try ConfigEditor.committed(base: Array(Self.base.utf8), diffID: Self.diffID, created: "t", message: nil)
        let b = try ConfigEditor.committed(base: Array(Self.base.utf8), diffID: Self.diffID, created: "t", message: nil)
        #expect(a == b)
    }

    @Test func configWithoutHistoryOrRootfs() throws {
        let bytes = try ConfigEditor.committed(base: Array(#"{"architecture":"arm64","os":"linux"}"#.utf8),
                                               diffID: Self.diffID, created: "t", message: nil)
        let config = try JSONCoding.decode(ImageConfig.self, from: bytes, what: "new config")
        #expect(config.rootfs.diffIDs == [Self.diffID])
        #expect(config.history?.count == 1)
    }

    @Test func rejectsMalformedRootfs() {
        #expect(throws: CommitError.self) {
            try ConfigEditor.committed(base: Array(#"{"rootfs":{"diff_ids":"x"}}"#.utf8), diffID: Self.diffID, created: "t", message: nil)
        }
    }

    @Test func rfc3339() {
        #expect(Timestamp.rfc3339(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.rfc3339(1_700_000_000) == "2023-11-14T22:13:20Z")
    }
}
