import StrataOCI
import StrataRegistry
import StrataSystem
import StrataTestSupport
import Testing

/// An image built in code (two gzip layers, one with ~1.5 MiB of incompressible data) in a
/// layout, pushed to a `TestRegistry`.
private let sharedFixture = Locked<RegistryFixture?>(nil)

struct RegistryFixture {
    let temp: TempDirectory
    let builder: ImageBuilder
    let manifest: Descriptor
    let registry: TestRegistry
    /// "docker://HOST/app:v1"
    let reference: String

    init(auth: TestRegistry.Auth = .none, repository: String = "strata/app:v1") throws {
        temp = try TempDirectory()
        builder = try ImageBuilder(layout: temp.child("layout"))
        try builder.addLayer(entries: [Items.dir("etc"), Items.file("etc/hello", "hello from the registry\n")])
        try builder.addLayer(entries: [Items.dir("data"),
                                       Items.file(Array("data/random".utf8), Items.pseudoRandom(count: 1_500_000, seed: 7))])
        manifest = try builder.write(tag: "v1")
        registry = try TestRegistry(auth: auth)
        reference = try registry.push(layout: builder.reference("v1"), reference: repository)
    }

    /// One anonymous registry with the image, shared by the tests that only read it (or push
    /// under other repositories): starting a registry per test is most of a test's time. Its
    /// processes end with the test process (the helper watches its parent).
    static func shared() throws -> RegistryFixture {
        try sharedFixture.withLock { shared in
            if let shared { return shared }
            let made = try RegistryFixture()
            shared = made
            return made
        }
    }

    /// The largest layer (the random one): its descriptor and the exact bytes of its blob.
    func bigLayer() throws -> (Descriptor, [UInt8]) {
        let layer = try #require(builder.layers.max { $0.descriptor.size < $1.descriptor.size })
        return (layer.descriptor, try FileIO.readAll(builder.blobPath(layer.descriptor.digest)))
    }

    /// Plain HTTP options with short timeouts, for tests.
    static func options(creds: String? = nil) -> RegistryOptions {
        var options = RegistryOptions()
        options.tlsVerify = false
        options.creds = creds
        options.timeout = 10
        options.retries = 2
        options.retryDelay = 0.05
        // No credentials of the machine's user leak into a test.
        options.environment = ["HOME": "/nonexistent", "XDG_RUNTIME_DIR": "/nonexistent"]
        return options
    }
}
