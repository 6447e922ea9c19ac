import StrataOCI
import StrataRegistry
import StrataTestSupport

/// The registry calls the artifact tests make on a `TestRegistry` (Debian's docker-registry,
/// no auth, plain HTTP).
extension TestRegistry {
    func client(_ repository: String) throws -> RegistryClient {
        var options = RegistryOptions()
        options.tlsVerify = false
        options.timeout = 20
        return try RegistryClient(host: host, repository: repository, options: options)
    }

    /// The image REPO:TAG resolved as a mount resolves it, and a client of its repository.
    func resolve(_ repository: String, tag: String) throws -> (RegistryClient, ResolvedImage) {
        let client = try client(repository)
        guard let reference = try RegistryReference.parse(self.reference("\(repository):\(tag)")) else {
            throw HarnessError("not a registry reference")
        }
        return (client, try RemoteImage.resolve(reference, client: client, platform: nil))
    }
}
