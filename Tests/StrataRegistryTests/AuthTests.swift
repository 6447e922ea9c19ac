#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataRegistry
import StrataTestSupport
import Testing

@Suite(.enabled(if: TestRegistry.isAvailable, TestRegistry.requirement))
struct AuthTests {
    @Test func basicAuthWithRightCredentials() throws {
        let f = try RegistryFixture(auth: .basic(user: "alice", password: "wonder land"))
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options(creds: "alice:wonder land"))
        let image = try RemoteImage.resolve(ref, client: client, platform: nil)
        #expect(image.manifestDigest == f.manifest.digest)
        let (layer, blob) = try f.bigLayer()
        #expect(try client.blob(layer.digest, range: 5..<500) == Array(blob[5..<500]))
        let pushed = try client.pushBlob(Array("pushed with basic auth".utf8))
        #expect(try client.blobExists(pushed.digest))
    }

    @Test func basicAuthWrongOrMissingCredentialsAreClear401s() throws {
        let f = try RegistryFixture(auth: .basic(user: "alice", password: "right"))
        let ref = try #require(try RegistryReference.parse(f.reference))
        let wrong = try RegistryClient(ref, options: RegistryFixture.options(creds: "alice:wrong"))
        let e = try #require(throws: RegistryError.self) { try wrong.manifest("v1") }
        #expect(e.kind == .unauthorized)
        #expect(e.description.contains("wrong credentials"))
        #expect(e.description.contains("alice"))
        #expect(e.description.contains(f.registry.host))
        #expect(e.description.contains("strata/app"))
        #expect(!e.description.contains("\n"))

        let anonymous = try RegistryClient(ref, options: RegistryFixture.options())
        let a = try #require(throws: RegistryError.self) { try anonymous.manifest("v1") }
        #expect(a.kind == .unauthorized)
        #expect(a.description.contains("authentication required"))
    }

    @Test func tokenFlowPullAndPush() throws {
        let f = try RegistryFixture(auth: .token(user: "tok", password: "en"))
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options(creds: "tok:en"))
        let image = try RemoteImage.resolve(ref, client: client, platform: nil)
        #expect(image.manifestDigest == f.manifest.digest)
        let (layer, blob) = try f.bigLayer()
        #expect(try client.blob(layer.digest, range: 0..<1000) == Array(blob[0..<1000]))
        let afterPull = try f.registry.tokenStatistics()
        // One pull token served every pull request (cached).
        #expect(afterPull.scopes.filter { $0 == "repository:strata/app:pull" }.count == 1)

        let pushed = try client.pushBlob(Array("pushed with a token".utf8))
        #expect(try client.blobExists(pushed.digest))
        let afterPush = try f.registry.tokenStatistics()
        #expect(afterPush.scopes.contains("repository:strata/app:pull,push"))
    }

    @Test func anonymousTokenWhenTheTokenServerAllowsIt() throws {
        let f = try RegistryFixture(auth: .token(user: "tok", password: "en", anonymous: true))
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options())
        let before = try f.registry.tokenStatistics()   // skopeo's push took some already
        #expect(try client.manifest("v1").digest == f.manifest.digest)
        let after = try f.registry.tokenStatistics()
        #expect(after.tokens == before.tokens + 1)
        #expect(after.refused == before.refused)
    }

    @Test func tokenFlowWrongCredentialsIsAClear401() throws {
        let f = try RegistryFixture(auth: .token(user: "tok", password: "en"))
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options(creds: "tok:nope"))
        let e = try #require(throws: RegistryError.self) { try client.manifest("v1") }
        #expect(e.kind == .unauthorized)
        #expect(e.description.contains("wrong credentials"))
        #expect(e.description.contains("tok"))
        #expect(try f.registry.tokenStatistics().refused >= 1)
    }

    @Test func tokenIsRefreshedAfterExpiry() throws {
        // expires_in 1 s: refreshed at 80 % of it, so a later request fetches a new token.
        let f = try RegistryFixture(auth: .token(user: "tok", password: "en", expires: 1))
        let ref = try #require(try RegistryReference.parse(f.reference))
        let client = try RegistryClient(ref, options: RegistryFixture.options(creds: "tok:en"))
        _ = try client.manifest("v1")
        let first = try f.registry.tokenStatistics().tokens
        var later = first
        for _ in 0..<50 where later == first {
            _ = try client.manifest("v1")
            later = try f.registry.tokenStatistics().tokens
            if later == first { usleepSeconds(0.1) }
        }
        #expect(later > first)
    }
}

func usleepSeconds(_ seconds: Double) {
    usleep(UInt32(seconds * 1_000_000))
}
