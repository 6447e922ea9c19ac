import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

import StrataOCI

extension RegistryClient {
    /// PUT a manifest (or index) under `reference` (a tag or its digest); returns its digest.
    @discardableResult
    public func pushManifest(_ bytes: [UInt8], mediaType: String, reference: String) throws -> Digest {
        let digest = Digest.sha256(of: bytes)
        let subject = "manifest \(reference)"
        let request = RegistryRequest(method: "PUT", target: "/v2/\(repository)/manifests/\(reference)",
                                      headers: ["Content-Type": mediaType], body: bytes, push: true,
                                      subject: subject, maxBytes: 1 << 20)
        try withRetries { _ in
            let (response, exchange) = try open(request, accept: [200, 201, 202, 204])
            _ = try? exchange.readAll()
            if let header = response.value(forHTTPHeaderField: "Docker-Content-Digest"),
               let claimed = try? Digest(parsing: header), claimed.algorithm == "sha256", claimed != digest {
                throw error(.badDigest, subject, "pushed manifest \(digest) but the registry stored \(claimed)")
            }
        }
        return digest
    }

    /// Uploads `bytes` as a blob (POST then monolithic PUT), unless the registry has it already.
    /// The descriptor's media type is "application/octet-stream": the caller sets the real one.
    @discardableResult
    public func pushBlob(_ bytes: [UInt8]) throws -> Descriptor {
        let digest = Digest.sha256(of: bytes)
        let descriptor = Descriptor(mediaType: "application/octet-stream", digest: digest, size: Int64(bytes.count))
        if try blobExists(digest) { return descriptor }
        let subject = "blob \(digest)"
        try withRetries { _ in
            let start = RegistryRequest(method: "POST", target: "/v2/\(repository)/blobs/uploads/",
                                        headers: ["Content-Length": "0"], body: [], push: true, subject: subject, maxBytes: 1 << 20)
            let (response, exchange) = try open(start, accept: [202])
            _ = try? exchange.readAll()
            guard let location = response.value(forHTTPHeaderField: "Location"), !location.isEmpty else {
                throw error(.server, subject, "upload started (202) without a Location")
            }
            var target = location
            if !target.hasPrefix("http://") && !target.hasPrefix("https://") {
                target = target.hasPrefix("/") ? target : "/" + target
            }
            target += (target.contains("?") ? "&" : "?") + "digest=" + digest.description.replacingOccurrences(of: ":", with: "%3A")
            let put = RegistryRequest(method: "PUT", target: target,
                                      headers: ["Content-Type": "application/octet-stream"],
                                      body: bytes, push: true, subject: subject, maxBytes: 1 << 20)
            let (done, putExchange) = try open(put, accept: [201, 204])
            _ = try? putExchange.readAll()
            if let header = done.value(forHTTPHeaderField: "Docker-Content-Digest"),
               let claimed = try? Digest(parsing: header), claimed != digest {
                throw error(.badDigest, subject, "uploaded \(digest) but the registry stored \(claimed)")
            }
        }
        return descriptor
    }

    /// `pushBlob` of a file's content.
    @discardableResult
    public func pushBlob(file path: String) throws -> Descriptor {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw error(.invalidInput, "blob upload", "\(path): cannot be read")
        }
        return try pushBlob([UInt8](data))
    }
}
