import StrataRegistry
import StrataSystem
import StrataTestSupport
import Testing

@Suite struct CredentialsTests {
    static func authJSON(_ entries: [String: String]) -> [UInt8] {
        let body = entries.map { key, userPass in
            let auth = base64(Array(userPass.utf8))
            return "\"\(key)\": {\"auth\": \"\(auth)\"}"
        }.joined(separator: ", ")
        return Array("{\"auths\": {\(body)}}".utf8)
    }

    static func base64(_ bytes: [UInt8]) -> String {
        let table = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var v = UInt32(bytes[i]) << 16
            if n > 1 { v |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { v |= UInt32(bytes[i + 2]) }
            for j in 0..<4 { out.append(j <= n ? table[Int((v >> (18 - 6 * UInt32(j))) & 63)] : UInt8(ascii: "=")) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    @Test func lookupOrderCredsAuthfileXdgThenDocker() throws {
        let temp = try TempDirectory()
        let runtime = try temp.makeDirectory("run/containers")
        let home = try temp.makeDirectory("home/.docker")
        try FileIO.writeAtomically(runtime + "/auth.json", Self.authJSON(["reg.example:5000": "podman:p1"]))
        try FileIO.writeAtomically(home + "/config.json",
                                   Self.authJSON(["https://reg.example:5000/v1/": "docker:d1", "other.example": "docker2:d2"]))
        var options = RegistryOptions()
        options.environment = ["XDG_RUNTIME_DIR": temp.child("run"), "HOME": temp.child("home")]

        // XDG_RUNTIME_DIR's auth.json first...
        let a = try #require(try RegistryCredentials.resolve(host: "reg.example:5000", repository: "x/y", options: options))
        #expect(a.username == "podman" && a.password == "p1")
        #expect(a.source == runtime + "/auth.json")
        // ...then ~/.docker/config.json for hosts it lacks.
        let b = try #require(try RegistryCredentials.resolve(host: "other.example", repository: "x", options: options))
        #expect(b.username == "docker2" && b.password == "d2")
        // No entry anywhere: anonymous.
        #expect(try RegistryCredentials.resolve(host: "none.example", repository: "x", options: options) == nil)

        // Without the podman file, docker's entry (written with scheme and /v1/) is found.
        var noRuntime = options
        noRuntime.environment = ["XDG_RUNTIME_DIR": temp.child("nothing"), "HOME": temp.child("home")]
        let c = try #require(try RegistryCredentials.resolve(host: "reg.example:5000", repository: "x", options: noRuntime))
        #expect(c.username == "docker" && c.password == "d1")

        // --authfile is the only file read when given.
        let authfile = temp.child("my-auth.json")
        try FileIO.writeAtomically(authfile, Self.authJSON(["reg.example:5000/x/y": "repo:r1", "reg.example:5000": "host:h1"]))
        var withFile = options
        withFile.authfile = authfile
        let d = try #require(try RegistryCredentials.resolve(host: "reg.example:5000", repository: "x/y", options: withFile))
        #expect(d.username == "repo" && d.password == "r1")   // the repository-specific key wins
        let e = try #require(try RegistryCredentials.resolve(host: "reg.example:5000", repository: "z", options: withFile))
        #expect(e.username == "host")
        #expect(try RegistryCredentials.resolve(host: "other.example", repository: "x", options: withFile) == nil)

        // --creds wins over everything; USER alone has an empty password.
        var withCreds = withFile
        withCreds.creds = "alice:s3:cret"
        let f = try #require(try RegistryCredentials.resolve(host: "reg.example:5000", repository: "x/y", options: withCreds))
        #expect(f.username == "alice" && f.password == "s3:cret")
        withCreds.creds = "bob"
        #expect(try RegistryCredentials.resolve(host: "h", repository: "x", options: withCreds)?.password == "")
    }

    @Test func badAuthFilesAreOneLineErrors() throws {
        let temp = try TempDirectory()
        var options = RegistryOptions()
        options.authfile = temp.child("missing.json")
        let missing = try #require(throws: RegistryError.self) {
            try RegistryCredentials.resolve(host: "h", repository: "r", options: options)
        }
        #expect(missing.description.contains("missing.json"))
        let broken = temp.child("broken.json")
        try FileIO.writeAtomically(broken, Array("{\"auths\": {\"h\": {\"auth\": \"%%%\"}}}".utf8))
        options.authfile = broken
        let bad = try #require(throws: RegistryError.self) {
            try RegistryCredentials.resolve(host: "h", repository: "r", options: options)
        }
        #expect(bad.description.contains("broken.json"))
        #expect(bad.description.contains("base64"))
        #expect(!bad.description.contains("\n"))
        try FileIO.writeAtomically(broken, Array("not json".utf8))
        #expect(throws: RegistryError.self) { try RegistryCredentials.resolve(host: "h", repository: "r", options: options) }
    }
}
