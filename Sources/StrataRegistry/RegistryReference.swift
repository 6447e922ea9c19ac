import StrataOCI

/// `docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]`, skopeo's and podman's transport syntax.
/// The host is required: there is no default registry (and no docker.io rewriting).
public struct RegistryReference: Sendable, Hashable, CustomStringConvertible {
    public static let prefix = "docker://"

    /// "127.0.0.1:5000"
    public var host: String
    /// "library/app"
    public var repository: String
    /// nil when digest-only; "latest" when neither tag nor digest is given.
    public var tag: String?
    public var digest: Digest?

    public init(host: String, repository: String, tag: String? = nil, digest: Digest? = nil) {
        self.host = host
        self.repository = repository
        self.tag = tag ?? (digest == nil ? "latest" : nil)
        self.digest = digest
    }

    /// nil when `text` has no "docker://" prefix (a local reference); throws a one-line
    /// `RegistryError` (kind `.invalidInput`) when it is malformed.
    public static func parse(_ text: String) throws -> RegistryReference? {
        guard text.hasPrefix(prefix) else { return nil }
        func bad(_ why: String) -> RegistryError {
            RegistryError(.invalidInput, host: "", repository: "", subject: "",
                          message: "invalid image reference \"\(text)\": \(why); expected docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]")
        }
        let rest = String(text.dropFirst(prefix.count))
        guard let slash = rest.firstIndex(of: "/") else { throw bad("no repository after the host") }
        let host = String(rest[..<slash])
        guard isValidHost(host) else {
            throw bad(host.isEmpty ? "no registry host" : "\"\(host)\" is not a registry host (HOST or HOST:PORT)")
        }
        // docker's rule: a first component without '.' or ':' (and not localhost) is a
        // repository on Docker Hub; no default registry is assumed here, so say so.
        guard host.contains(".") || host.contains(":") || host == "localhost" else {
            throw bad("\"\(host)\" is not a registry host (no '.' or ':'); no default registry is assumed, write docker://docker.io/\(rest)")
        }
        var name = String(rest[rest.index(after: slash)...])
        var digest: Digest?
        if let at = name.firstIndex(of: "@") {
            let digestText = String(name[name.index(after: at)...])
            do {
                digest = try Digest(parsing: digestText)
            } catch {
                throw bad("\"\(digestText)\" is not a digest")
            }
            guard digest?.algorithm == "sha256" else { throw bad("only sha256 digests are supported") }
            name = String(name[..<at])
        }
        var tag: String?
        if let colon = name.lastIndex(of: ":") {
            let t = String(name[name.index(after: colon)...])
            guard isValidTag(t) else { throw bad("\"\(t)\" is not a valid tag") }
            tag = t
            name = String(name[..<colon])
        }
        guard !name.isEmpty else { throw bad("no repository after the host") }
        guard isValidRepository(name) else {
            throw bad("\"\(name)\" is not a valid repository name (lowercase letters, digits, '.', '_', '-', '/' separated)")
        }
        var reference = RegistryReference(host: host, repository: name, tag: tag, digest: digest)
        if digest != nil && tag == nil { reference.tag = nil }
        return reference
    }

    public var description: String {
        var text = "\(RegistryReference.prefix)\(host)/\(repository)"
        if let tag { text += ":\(tag)" }
        if let digest { text += "@\(digest)" }
        return text
    }

    /// What a manifest GET names: the digest when there is one (pinned), else the tag.
    public var manifestReference: String { digest?.description ?? tag ?? "latest" }

    /// HOST, HOST:PORT, or [IPv6]:PORT; host names of letters, digits, '-' and '.'.
    static func isValidHost(_ text: String) -> Bool {
        guard !text.isEmpty else { return false }
        var hostPart = Substring(text)
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return false }
            let inner = text[text.index(after: text.startIndex)..<close]
            guard !inner.isEmpty, inner.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
            let after = text[text.index(after: close)...]
            if after.isEmpty { return true }
            guard after.hasPrefix(":") else { return false }
            return isValidPort(after.dropFirst())
        }
        if let colon = text.firstIndex(of: ":") {
            guard isValidPort(text[text.index(after: colon)...]) else { return false }
            hostPart = text[..<colon]
        }
        guard !hostPart.isEmpty, !hostPart.hasPrefix("-"), !hostPart.hasPrefix("."), !hostPart.hasSuffix(".") else { return false }
        return hostPart.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ".") }
    }

    static func isValidPort(_ text: Substring) -> Bool {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int(text) else { return false }
        return n > 0 && n < 65536
    }

    /// distribution's grammar: components `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` joined by '/'.
    static func isValidRepository(_ text: String) -> Bool {
        guard text.utf8.count <= 255 else { return false }
        for component in text.split(separator: "/", omittingEmptySubsequences: false) {
            guard let first = component.first, let last = component.last,
                  isLowerAlnum(first), isLowerAlnum(last) else { return false }
            var previous: Character = first
            for c in component.dropFirst() {
                if isLowerAlnum(c) { previous = c; continue }
                guard c == "." || c == "_" || c == "-" else { return false }
                // '.' never doubles; '_' at most twice; '-' any number of times.
                if c == "." && !isLowerAlnum(previous) { return false }
                if c == "_" && previous == "." { return false }
                previous = c
            }
            if component.contains("___") || component.contains("._") || component.contains("_.") { return false }
        }
        return true
    }

    static func isValidTag(_ text: String) -> Bool {
        guard let first = text.first, text.utf8.count <= 128 else { return false }
        guard first.isASCII && (first.isLetter || first.isNumber || first == "_") else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "." || $0 == "-") }
    }

    private static func isLowerAlnum(_ c: Character) -> Bool {
        c.isASCII && (c.isNumber || (c.isLetter && c.isLowercase))
    }
}
