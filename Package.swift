// swift-tools-version:6.0
import PackageDescription

// Module graph (dependencies point down): the README's Architecture section draws it and its
// module table lists each target's dependencies, which must be exactly the ones below
// (scripts/check-imports, run by ModuleGraphTests, checks both and every import).
// C libraries stay at the edge: CFuse only in StrataFuse, CZlib/CZstd/CIsal only in
// StrataCodec, CCrypto only in StrataHash, CLinux only in StrataSystem (its LinuxCalls).
let package = Package(
    name: "Strata",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "strata", targets: ["strata"]),
    ],
    targets: [
        .systemLibrary(name: "CFuse", path: "CFuse", pkgConfig: "fuse3",
                       providers: [.apt(["libfuse3-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CIsal", path: "Sources/CIsal", pkgConfig: "libisal",
                       providers: [.apt(["libisal-dev"])]),
        // Linux calls Swift's Glibc module lacks (xattrs, renameat2, O_PATH...): headers only.
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),

        .target(name: "StrataSystem", dependencies: ["CLinux"]),
        .target(name: "StrataHash", dependencies: ["CCrypto", "StrataSystem"]),
        .target(name: "StrataCodec", dependencies: ["CZlib", "CZstd", "CIsal", "StrataSystem"]),
        .target(name: "StrataTar", dependencies: ["StrataSystem"]),
        .target(name: "StrataOCI", dependencies: ["StrataHash", "StrataSystem"]),
        // eStargz and zstd:chunked: footers, tables of contents, writers (below the index, which reads them).
        .target(name: "StrataSeekable", dependencies: ["StrataCodec", "StrataTar", "StrataOCI", "StrataHash", "StrataSystem"]),
        .target(name: "StrataIndex", dependencies: ["StrataSeekable", "StrataCodec", "StrataTar", "StrataOCI", "StrataHash", "StrataSystem"]),
        .target(name: "StrataUnion", dependencies: ["StrataIndex", "StrataSystem"],
                // The tree is built once, single-threaded, then only read: the runtime's dynamic
                // exclusivity checks cost a tenth of the build and guard nothing here.
                swiftSettings: [.unsafeFlags(["-enforce-exclusivity=unchecked"])]),
        .target(name: "StrataFS", dependencies: ["StrataUnion", "StrataIndex", "StrataHash", "StrataSystem"]),
        .target(name: "StrataUpper", dependencies: ["StrataFS", "StrataUnion", "StrataIndex", "StrataSystem"]),
        .target(name: "StrataFuse", dependencies: ["CFuse", "StrataFS", "StrataSystem"]),
        .target(name: "StrataBundle", dependencies: ["StrataOCI", "StrataSystem"]),
        .target(name: "StrataCommit", dependencies: ["StrataSeekable", "StrataTar", "StrataCodec", "StrataOCI", "StrataHash", "StrataSystem"]),
        // The OCI distribution client (URLSession): references, credentials, manifests, ranged blobs, push.
        .target(name: "StrataRegistry", dependencies: ["StrataOCI", "StrataHash", "StrataSystem"]),
        // Images straight from a registry: lazy blobs, background fetch, index artifacts, status.
        .target(name: "StrataRemote", dependencies: ["StrataRegistry", "StrataIndex", "StrataOCI", "StrataHash", "StrataSystem"]),
        // podman's Additional Layer Store: each layer of a registry image as its own tree (`strata store`).
        .target(name: "StrataStore", dependencies: ["StrataFS", "StrataRemote", "StrataRegistry", "StrataIndex", "StrataCodec", "StrataOCI", "StrataHash", "StrataSystem"]),
        .target(name: "StrataSnapshot", dependencies: ["StrataCommit", "StrataOCI", "StrataIndex", "StrataUnion", "StrataCodec", "StrataHash", "StrataSystem"]),
        .executableTarget(name: "strata", dependencies: [
            "StrataFuse", "StrataFS", "StrataUpper", "StrataUnion", "StrataIndex", "StrataSeekable", "StrataCodec", "StrataOCI", "StrataBundle", "StrataCommit", "StrataSnapshot", "StrataRegistry", "StrataRemote", "StrataStore", "StrataSystem",
        ]),

        // Builds OCI images in code for the tests (no binary fixtures are committed).
        .target(name: "StrataTestSupport", dependencies: ["StrataTar", "StrataCodec", "StrataOCI", "StrataHash", "StrataSystem", "StrataIndex", "StrataSeekable", "StrataFS"]),

        .testTarget(name: "StrataSystemTests", dependencies: ["StrataSystem"]),
        // The module graph: README table, Package.swift and imports agree (scripts/check-imports).
        .testTarget(name: "StrataModuleGraphTests", dependencies: ["StrataTestSupport", "StrataSystem"]),
        .testTarget(name: "StrataCodecTests", dependencies: ["StrataCodec", "StrataHash"]),
        .testTarget(name: "StrataTarTests", dependencies: ["StrataTar", "StrataTestSupport"]),
        .testTarget(name: "StrataOCITests", dependencies: ["StrataOCI", "StrataTestSupport"]),
        .testTarget(name: "StrataSeekableTests", dependencies: ["StrataSeekable", "StrataCodec", "StrataTar", "StrataHash", "StrataSystem", "StrataTestSupport"]),
        .testTarget(name: "StrataIndexTests", dependencies: ["StrataIndex", "StrataTestSupport"]),
        .testTarget(name: "StrataUnionTests", dependencies: ["StrataUnion", "StrataTestSupport"]),
        .testTarget(name: "StrataFSTests", dependencies: ["StrataFS", "StrataTestSupport"]),
        .testTarget(name: "StrataFuseTests", dependencies: ["StrataFuse", "StrataFS", "StrataSystem"]),
        .testTarget(name: "StrataUpperTests", dependencies: ["StrataUpper", "StrataFS", "StrataIndex", "StrataTestSupport", "StrataSystem"]),
        .testTarget(name: "StrataBundleTests", dependencies: ["StrataBundle", "StrataTestSupport"]),
        .testTarget(name: "StrataCommitTests", dependencies: ["StrataCommit", "StrataTar", "StrataTestSupport", "StrataSystem"]),
        .testTarget(name: "StrataRegistryTests", dependencies: ["StrataRegistry", "StrataOCI", "StrataHash", "StrataTestSupport", "StrataSystem"]),
        .testTarget(name: "StrataRemoteTests", dependencies: ["StrataRemote", "StrataRegistry", "StrataIndex", "StrataOCI", "StrataTestSupport", "StrataSystem"]),
        .testTarget(name: "StrataStoreTests", dependencies: ["StrataStore", "StrataFS", "StrataIndex", "StrataOCI", "StrataRegistry", "StrataRemote", "StrataTestSupport", "StrataSystem"]),
        .testTarget(name: "StrataSnapshotTests", dependencies: ["StrataSnapshot", "StrataOCI", "StrataTestSupport", "StrataSystem"]),
        // "strata": these tests drive the built binary, so building them builds it first and
        // `swift test` never runs them against a stale or missing one.
        .testTarget(name: "StrataMountTests", dependencies: ["strata", "StrataTestSupport", "StrataIndex", "StrataOCI", "StrataHash", "StrataSystem"]),
    ]
)
