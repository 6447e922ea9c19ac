import StrataRegistry

/// The registry calls the artifact code makes beyond the client's own.
enum RegistryLookup {
    /// The manifest at `reference`, nil when the registry has none (404).
    static func manifestIfPresent(_ client: RegistryClient, _ reference: String) throws -> RemoteManifest? {
        do {
            return try client.manifest(reference)
        } catch let error as RegistryError where error.kind == .notFound {
            return nil
        }
    }

    /// "docker://HOST/REPO", how messages name the client's repository.
    static func name(_ client: RegistryClient) -> String { "docker://\(client.host)/\(client.repository)" }
}
