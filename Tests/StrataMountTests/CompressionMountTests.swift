#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataTar
import StrataTestSupport

/// Every layer compression and media type (issue 2, point 2). umoci 0.4.7 reads only OCI
/// media types and no zstd, so each image is compared with a gzip OCI twin of the same tars
/// (same diff_ids, so the trees must be the same).
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct CompressionMountTests {
    /// Two layers with enough data that multi-member gzip / multi-frame zstd cut through
    /// file data and headers, and a file spanning several checkpoints.
    static let layers: [[TarItem]] = [
        [Items.dir("data"), Items.file(bytes("data/big"), Items.pseudoRandom(count: 9 << 20, seed: 3)),
         Items.file("data/small", "small"), Items.dir("gone"), Items.file("gone/x", "x"),
         Items.symlink("data/link", to: "big"), Items.hardlink("data/hard", to: "data/small")]
            + (0..<300).map { Items.file("many/f\($0)", String(repeating: "\($0) ", count: $0)) },
        [Items.whiteout("gone"), Items.file(bytes("data/big"), Items.pseudoRandom(count: 3 << 20, seed: 4)),
         Items.file("top", "top")],
    ]

    static let cases: [(String, ImageBuilder.Compression, ImageBuilder.MediaTypeStyle)] = [
        ("gzip-single", .gzip, .oci),
        // Odd chunk sizes: member and frame boundaries fall inside entries and headers.
        ("gzip-multi", .gzipMultiMember(chunk: 1_000_003), .oci),
        ("zstd-single", .zstd, .oci),
        ("zstd-multi", .zstdMultiFrame(chunk: 999_983), .oci),
        ("tar", .none, .oci),
        ("docker-gzip", .gzip, .docker),
        ("docker-tar", .none, .docker),
        ("docker-zstd", .zstd, .docker),
        ("nondistributable-gzip", .gzip, .nondistributable),
        ("nondistributable-zstd", .zstdMultiFrame(chunk: 777_777), .nondistributable),
        ("nondistributable-tar", .none, .nondistributable),
    ]

    @Test(arguments: cases.map(\.0))
    func compression(name: String) throws {
        let (_, compression, style) = Self.cases.first { $0.0 == name }!
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        for entries in Self.layers { try builder.addLayer(entries: entries, compression: .gzip) }
        try builder.write(tag: "reference")
        builder.layers = []
        for entries in Self.layers {
            try builder.addLayer(entries: entries, compression: compression, mediaTypeStyle: style)
        }
        try builder.write(tag: "test")
        let c = try expectSameAsUmoci(builder, referenceTag: "reference")
        #expect(c.mounted.entry("data/big")?.size == 3 << 20)
    }

    /// Layers of different compressions stacked in one image.
    @Test func mixedCompressionsInOneImage() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ImageBuilder(layout: temp.child("layout"))
        let stack: [[TarItem]] = [
            [Items.file("a", "1"), Items.file("b", "1")], [Items.file("b", "2"), Items.file("c", "2")],
            [Items.whiteout("a"), Items.file("d", "3")], [Items.file("e", "4")],
        ]
        for entries in stack { try builder.addLayer(entries: entries, compression: .gzip) }
        try builder.write(tag: "reference")
        builder.layers = []
        for (entries, compression) in zip(stack, [ImageBuilder.Compression.zstd, .none, .gzipMultiMember, .zstdMultiFrame]) {
            try builder.addLayer(entries: entries, compression: compression)
        }
        try builder.write(tag: "test")
        try expectSameAsUmoci(builder, referenceTag: "reference")
    }
}
