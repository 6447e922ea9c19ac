import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import StrataHash
import StrataOCI

extension RegistryClient {
    /// The four types every manifest GET accepts: without the OCI ones Debian's registry
    /// answers 404, without the Docker ones it rewrites schema 2 to schema 1.
    public static let manifestAcceptTypes = [MediaType.ociManifest, MediaType.ociIndex,
                                             MediaType.dockerManifest, MediaType.dockerManifestList]

    /// GET a manifest by tag or "sha256:…" with the four Accept types. Its digest is computed;
    /// against a digest reference it must match, and when the registry sends
    /// Docker-Content-Digest (sha256) that must match too.
    public func manifest(_ reference: String) throws -> RemoteManifest {
        let subject = "manifest \(reference)"
        let pinned: Digest? = reference.contains(":") ? try? Digest(parsing: reference) : nil
        if reference.contains(":") && pinned == nil || !reference.contains(":") && !RegistryReference.isValidTag(reference) {
            throw error(.invalidInput, subject, "\"\(reference)\" is neither a tag nor a sha256 digest")
        }
        let request = RegistryRequest(target: "/v2/\(repository)/manifests/\(reference)",
                                      headers: ["Accept": RegistryClient.manifestAcceptTypes.joined(separator: ", "),
                                                "Accept-Encoding": "identity"],
                                      subject: subject, maxBytes: 4 << 20)
        return try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200])
            let bytes = try readAll(exchange, subject: subject)
            try checkLength(response, bytes.count, subject: subject)
            let digest = Digest.sha256(of: bytes)
            if let pinned, pinned != digest {
                throw error(.badDigest, subject, "the registry served content whose digest is \(digest), not \(pinned)")
            }
            if let header = response.value(forHTTPHeaderField: "Docker-Content-Digest"),
               let claimed = try? Digest(parsing: header), claimed.algorithm == "sha256", claimed != digest {
                throw error(.badDigest, subject, "the registry says the digest is \(claimed) but the content's is \(digest)")
            }
            let mediaType = try manifestMediaType(response, bytes, subject: subject)
            return RemoteManifest(bytes: bytes, mediaType: mediaType, digest: digest)
        }
    }

    /// What a tag (or digest) names now, from a HEAD (no manifest download; registries that
    /// meter pulls count GETs only): media type, digest and size, or nil when it does not exist
    /// (404). A registry that sends no Docker-Content-Digest costs a GET instead.
    public func manifestDescriptor(_ reference: String) throws -> Descriptor? {
        let subject = "manifest \(reference)"
        let request = RegistryRequest(method: "HEAD", target: "/v2/\(repository)/manifests/\(reference)",
                                      headers: ["Accept": RegistryClient.manifestAcceptTypes.joined(separator: ", ")],
                                      subject: subject, maxBytes: 1 << 20)
        let head: Descriptor?? = try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200, 404])
            _ = exchange.readPrefix(1 << 20)
            if response.statusCode == 404 { return .some(nil) }
            guard let header = response.value(forHTTPHeaderField: "Docker-Content-Digest"),
                  let digest = try? Digest(parsing: header), digest.isVerifiable,
                  let length = response.value(forHTTPHeaderField: "Content-Length").flatMap({ Int64($0) }) else { return nil }
            let type = (response.value(forHTTPHeaderField: "Content-Type") ?? "")
                .split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
            guard RegistryClient.manifestAcceptTypes.contains(type) else { return nil }
            if reference.contains(":"), digest.description != reference {
                throw error(.badDigest, subject, "the registry says the digest is \(digest)")
            }
            return .some(Descriptor(mediaType: type, digest: digest, size: length))
        }
        if let head { return head }
        do {
            return try manifest(reference).descriptor
        } catch let e as RegistryError where e.kind == .notFound {
            return nil
        }
    }

    /// The media type from Content-Type, checked against the document's `mediaType` field.
    private func manifestMediaType(_ response: HTTPURLResponse, _ bytes: [UInt8], subject: String) throws -> String {
        let header = (response.value(forHTTPHeaderField: "Content-Type") ?? "")
            .split(separator: ";").first.map { String($0).trimmingCharacters(in: .whitespaces) } ?? ""
        var field: String?
        if let json = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] {
            field = json["mediaType"] as? String
            if field == nil, json["manifests"] != nil { field = MediaType.ociIndex }
            if field == nil, json["config"] != nil, json["layers"] != nil { field = MediaType.ociManifest }
        } else {
            throw error(.server, subject, "the registry served a manifest that is not a JSON object")
        }
        if header == MediaType.dockerManifestSchema1 || header == MediaType.dockerManifestSchema1Signed {
            throw error(.server, subject, "Docker schema 1 manifests are not supported")
        }
        if RegistryClient.manifestAcceptTypes.contains(header) {
            if let field, field != header, json(field, isSameKindAs: header) == false {
                throw error(.server, subject, "Content-Type \(header) but the manifest says mediaType \(field)")
            }
            return header
        }
        guard let field, RegistryClient.manifestAcceptTypes.contains(field) else {
            throw error(.server, subject, "unsupported manifest media type \"\(header.isEmpty ? field ?? "" : header)\"")
        }
        return field
    }

    private func json(_ a: String, isSameKindAs b: String) -> Bool {
        MediaType.isIndex(a) == MediaType.isIndex(b)
    }

    /// A Content-Length that disagrees with the body received: the body is not trusted.
    func checkLength(_ response: HTTPURLResponse, _ count: Int, subject: String) throws {
        if let text = response.value(forHTTPHeaderField: "Content-Length"), let declared = Int(text), declared != count {
            throw error(.badLength, subject, "Content-Length \(declared) but \(count) bytes arrived")
        }
    }

    /// The referrers API's OCI index of manifests whose `subject` is `digest` (optionally only
    /// those of `artifactType`), or nil when the registry has no referrers API or none (404).
    public func referrers(_ digest: Digest, artifactType: String?) throws -> [UInt8]? {
        var target = "/v2/\(repository)/referrers/\(digest)"
        if let artifactType {
            var components = URLComponents()
            components.queryItems = [URLQueryItem(name: "artifactType", value: artifactType)]
            target += "?" + RegistryClient.formEncoded(components.percentEncodedQuery ?? "")
        }
        let subject = "referrers of \(digest)"
        let request = RegistryRequest(target: target, headers: ["Accept": MediaType.ociIndex], subject: subject, maxBytes: 4 << 20)
        return try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200, 404])
            let bytes = try readAll(exchange, subject: subject)
            if response.statusCode == 404 { return nil }
            try checkLength(response, bytes.count, subject: subject)
            guard (try? JSONSerialization.jsonObject(with: Data(bytes))) is [String: Any] else {
                throw error(.server, subject, "the referrers answer is not a JSON object")
            }
            return bytes
        }
    }
}
