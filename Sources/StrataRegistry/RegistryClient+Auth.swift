import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import StrataSystem

/// How the registry wants requests authenticated, learnt from 401s (there is no `/v2/` ping:
/// a request's own 401 carries the challenge).
struct AuthState {
    enum Scheme: Equatable {
        /// No 401 seen yet: requests go out anonymous.
        case unknown
        case basic
        case bearer(realm: String, service: String?)
    }
    var scheme = Scheme.unknown
    /// Bearer tokens by scope, with the time (uptime seconds) they are to be refreshed.
    var tokens: [String: (token: String, refreshAt: Double)] = [:]
}

/// A parsed `WWW-Authenticate` challenge: `Bearer realm="…",service="…",scope="…"`.
struct AuthChallenge: Equatable {
    var scheme: String
    var parameters: [String: String]

    init?(_ header: String) {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard let space = text.firstIndex(of: " ") else {
            guard !text.isEmpty else { return nil }
            scheme = text.lowercased()
            parameters = [:]
            return
        }
        scheme = text[..<space].lowercased()
        parameters = AuthChallenge.parameters(String(text[text.index(after: space)...]))
    }

    /// key=value or key="value" pairs separated by commas; quoted values may hold commas.
    static func parameters(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        var chars = Array(text)[...]
        while !chars.isEmpty {
            while let c = chars.first, c == " " || c == "," { chars.removeFirst() }
            guard let eq = chars.firstIndex(of: "=") else { break }
            let key = String(chars[..<eq]).trimmingCharacters(in: .whitespaces).lowercased()
            chars = chars[(eq + 1)...]
            var value = ""
            if chars.first == "\"" {
                chars.removeFirst()
                while let c = chars.first {
                    chars.removeFirst()
                    if c == "\\", let next = chars.first { value.append(next); chars.removeFirst(); continue }
                    if c == "\"" { break }
                    value.append(c)
                }
            } else {
                while let c = chars.first, c != "," { value.append(c); chars.removeFirst() }
                value = value.trimmingCharacters(in: .whitespaces)
            }
            if !key.isEmpty { result[key] = value }
        }
        return result
    }
}

extension RegistryClient {
    /// Sets the scheme from a challenge header; a scheme we cannot use is an error.
    private func adopt(challenge header: String, subject: String) throws {
        guard let challenge = AuthChallenge(header) else {
            throw error(.unauthorized, subject, "authentication required (401) but the registry sent no WWW-Authenticate challenge", status: 401)
        }
        switch challenge.scheme {
        case "basic":
            auth.withLock { $0.scheme = .basic }
        case "bearer":
            guard let realm = challenge.parameters["realm"], !realm.isEmpty else {
                throw error(.unauthorized, subject, "Bearer challenge without a realm: \(header)", status: 401)
            }
            let scheme = AuthState.Scheme.bearer(realm: realm, service: challenge.parameters["service"])
            auth.withLock {
                // Another realm or service (after expiry, some registries move): old tokens are void.
                if $0.scheme != scheme { $0.tokens = [:] }
                $0.scheme = scheme
            }
        default:
            throw error(.unauthorized, subject, "unsupported authentication scheme \"\(challenge.scheme)\" (401)", status: 401)
        }
    }

    /// A 401 came back: re-read the challenge (the realm may have moved), drop the token that
    /// failed, so the next `authorizationHeader` fetches a fresh one. Throws when retrying
    /// cannot help (no credentials for a Basic challenge).
    func challenged(_ response: HTTPURLResponse, scope: String, sent: String?, subject: String) throws {
        let header = response.value(forHTTPHeaderField: "WWW-Authenticate") ?? ""
        try adopt(challenge: header, subject: subject)
        let scheme = auth.withLock { $0.scheme }
        if scheme == .basic {
            guard credentials != nil else {
                throw error(.unauthorized, subject, "authentication required: the registry answered 401 and no credentials were found (use --creds or --authfile)", status: 401)
            }
            if sent != nil, let credentials {
                throw error(.unauthorized, subject, "authentication failed: wrong credentials for user \"\(credentials.username)\" (from \(credentials.source)) (401)", status: 401)
            }
        }
        auth.withLock { _ = $0.tokens.removeValue(forKey: scope) }
    }

    /// The Authorization header for a request needing `scope`, fetching a token when needed.
    func authorizationHeader(scope: String, subject: String) throws -> String? {
        let scheme = auth.withLock { $0.scheme }
        switch scheme {
        case .unknown:
            return nil
        case .basic:
            return credentials?.basicAuthorization
        case .bearer(let realm, let service):
            if let cached = auth.withLock({ $0.tokens[scope] }), cached.refreshAt > HTTPExchange.now() {
                return "Bearer " + cached.token
            }
            // One fetch at a time: threads that find the token expired together share the new one.
            tokenFetch.lock()
            defer { tokenFetch.unlock() }
            let now = HTTPExchange.now()
            if let cached = auth.withLock({ $0.tokens[scope] }), cached.refreshAt > now {
                return "Bearer " + cached.token
            }
            let (token, lifetime) = try fetchToken(realm: realm, service: service, scope: scope, subject: subject)
            // Refresh at 80 % of the lifetime, so a long mount never sends an expired token.
            auth.withLock { $0.tokens[scope] = (token, now + lifetime * 0.8) }
            return "Bearer " + token
        }
    }

    /// `GET realm?service=…&scope=…`, with Basic credentials when there are any.
    private func fetchToken(realm: String, service: String?, scope: String, subject: String) throws -> (String, Double) {
        guard var components = URLComponents(string: realm) else {
            throw error(.unauthorized, subject, "token realm \"\(realm)\" is not a URL")
        }
        var items = components.queryItems ?? []
        if let service { items.append(URLQueryItem(name: "service", value: service)) }
        items.append(URLQueryItem(name: "scope", value: scope))
        components.queryItems = items
        components.percentEncodedQuery = components.percentEncodedQuery.map(RegistryClient.formEncoded)
        guard let url = components.url else { throw error(.unauthorized, subject, "token realm \"\(realm)\" is not a URL") }
        let request = RegistryRequest(target: url.absoluteString, subject: subject, maxBytes: 1 << 20)
        return try withRetries { _ in
            let (response, exchange) = try send(request, authorization: credentials?.basicAuthorization)
            let body = try readAll(exchange, subject: subject)
            switch response.statusCode {
            case 200:
                break
            case 401, 403:
                if let credentials {
                    throw error(.unauthorized, subject, "authentication failed: the token server \(realm) refused user \"\(credentials.username)\" (from \(credentials.source)): wrong credentials (\(response.statusCode))", status: 401)
                }
                throw error(.unauthorized, subject, "authentication required: the token server \(realm) refused anonymous access (\(response.statusCode)); use --creds or --authfile", status: 401)
            default:
                throw statusError(response.statusCode, response: response, body: body, request: request, sentAuthorization: credentials != nil)
            }
            guard let json = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any],
                  let token = (json["token"] as? String) ?? (json["access_token"] as? String), !token.isEmpty else {
                throw error(.server, subject, "the token server \(realm) answered without a token")
            }
            let lifetime = (json["expires_in"] as? NSNumber)?.doubleValue ?? 60
            return (token, max(1, lifetime))
        }
    }
}
