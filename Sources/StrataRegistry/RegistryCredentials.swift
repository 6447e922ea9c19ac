import Foundation

/// A user name and password for one registry host, from `--creds`, `--authfile`, or the
/// files podman and docker write (`auths` → HOST → base64 `auth` of "user:password").
public struct RegistryCredentials: Sendable, Hashable {
    public var username: String
    public var password: String
    /// Where they came from ("--creds" or a file path), for error messages.
    public var source: String

    public init(username: String, password: String, source: String) {
        self.username = username
        self.password = password
        self.source = source
    }

    /// The files looked at, in order, when neither `--creds` nor `--authfile` is given:
    /// `${XDG_RUNTIME_DIR}/containers/auth.json` (podman's `/run/containers/UID/auth.json`
    /// when XDG_RUNTIME_DIR is unset), then `~/.docker/config.json`.
    public static func defaultFiles(environment: [String: String]) -> [String] {
        var files: [String] = []
        if let runtime = environment["XDG_RUNTIME_DIR"], !runtime.isEmpty {
            files.append("\(runtime)/containers/auth.json")
        } else {
            files.append("/run/containers/\(getuid())/auth.json")
        }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        files.append("\(home)/.docker/config.json")
        return files
    }

    /// The credentials for `host` (and `repository`: podman allows keys "HOST/REPO"), or nil
    /// for anonymous access. `--creds` wins, then `--authfile` alone, then the default files.
    /// A malformed file that is consulted is an error, not a silent anonymous pull.
    public static func resolve(host: String, repository: String, options: RegistryOptions) throws -> RegistryCredentials? {
        if let creds = options.creds {
            guard !creds.isEmpty else { throw invalid(host, repository, "--creds is empty: expected USER[:PASS]") }
            if let colon = creds.firstIndex(of: ":") {
                return RegistryCredentials(username: String(creds[..<colon]),
                                           password: String(creds[creds.index(after: colon)...]), source: "--creds")
            }
            return RegistryCredentials(username: creds, password: "", source: "--creds")
        }
        if let file = options.authfile {
            guard FileManager.default.fileExists(atPath: file) else {
                throw invalid(host, repository, "authfile \(file): no such file")
            }
            return try lookup(file: file, host: host, repository: repository)
        }
        let environment = options.environment ?? ProcessInfo.processInfo.environment
        for file in defaultFiles(environment: environment) where FileManager.default.fileExists(atPath: file) {
            if let found = try lookup(file: file, host: host, repository: repository) { return found }
        }
        return nil
    }

    /// The entry for `host` in one auth file: the most specific "HOST/REPO…" key first, then
    /// "HOST", also written with a scheme or a trailing path ("https://HOST/v1/").
    public static func lookup(file: String, host: String, repository: String) throws -> RegistryCredentials? {
        guard let data = FileManager.default.contents(atPath: file) else {
            throw invalid(host, repository, "\(file): cannot be read")
        }
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: data) } catch {
            throw invalid(host, repository, "\(file): not valid JSON")
        }
        guard let top = json as? [String: Any] else { throw invalid(host, repository, "\(file): not a JSON object") }
        guard let auths = top["auths"] as? [String: Any] else { return nil }
        var entries: [String: [String: Any]] = [:]
        for (key, value) in auths {
            guard let entry = value as? [String: Any] else { continue }
            entries[normalise(key)] = entry
        }
        var keys: [String] = []
        let components = repository.split(separator: "/").map(String.init)
        for n in stride(from: components.count, through: 1, by: -1) {
            keys.append(host + "/" + components.prefix(n).joined(separator: "/"))
        }
        keys.append(host)
        for key in keys {
            guard let entry = entries[key] else { continue }
            if let auth = entry["auth"] as? String, !auth.isEmpty {
                guard let decoded = Data(base64Encoded: auth), let text = String(data: decoded, encoding: .utf8),
                      let colon = text.firstIndex(of: ":") else {
                    throw invalid(host, repository, "\(file): auths[\"\(key)\"].auth is not base64 of USER:PASSWORD")
                }
                return RegistryCredentials(username: String(text[..<colon]),
                                           password: String(text[text.index(after: colon)...]), source: file)
            }
            if let user = entry["username"] as? String, let password = entry["password"] as? String {
                return RegistryCredentials(username: user, password: password, source: file)
            }
        }
        return nil
    }

    /// "https://host/v1/" → "host"; "host/ns/repo" stays.
    static func normalise(_ key: String) -> String {
        var k = Substring(key)
        for scheme in ["https://", "http://"] where k.hasPrefix(scheme) {
            k = k.dropFirst(scheme.count)
            // With a scheme, a path is docker's "/v1/" style, not a repository.
            if let slash = k.firstIndex(of: "/") { k = k[..<slash] }
        }
        while k.hasSuffix("/") { k = k.dropLast() }
        return String(k)
    }

    /// The Authorization header value for basic authentication.
    var basicAuthorization: String {
        "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
    }

    private static func invalid(_ host: String, _ repository: String, _ message: String) -> RegistryError {
        RegistryError(.invalidInput, host: host, repository: repository, subject: "credentials", message: message)
    }
}
