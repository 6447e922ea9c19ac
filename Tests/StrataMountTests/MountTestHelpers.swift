#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataOCI
import StrataTar
import StrataTestSupport
import StrataSystem
import StrataHash

/// Comparing with umoci needs root (umoci restores owners and devices), umoci itself,
/// and a built strata.
let canCompareMounts = getuid() == 0 && Umoci.isAvailable && StrataBinary.isBuilt

/// Builds a layout in a fresh temp dir; the caller keeps `temp` alive.
func makeImage(_ temp: TempDirectory, layers: [[TarItem]], format: TarWriter.Format = .pax,
               compression: ImageBuilder.Compression = .gzip, tag: String = "test") throws -> ImageBuilder {
    let builder = try ImageBuilder(layout: temp.child("layout"))
    for entries in layers { try builder.addLayer(entries: entries, format: format, compression: compression) }
    try builder.write(tag: tag)
    return builder
}

/// Mounts `tag` and unpacks `referenceTag` (default: the same) with umoci; they must match.
/// Returns the comparison for further, rule-specific expectations.
@discardableResult
func expectSameAsUmoci(_ builder: ImageBuilder, tag: String = "test", referenceTag: String? = nil,
                       ignoring: Set<TreeSnapshot.Field> = [], ignoringAt: [String: Set<TreeSnapshot.Field>] = [:],
                       sourceLocation: SourceLocation = #_sourceLocation) throws -> MountComparison {
    let comparison = try MountComparison.run(layout: builder.layout, tag: tag, referenceTag: referenceTag, ignoring: ignoring,
                                             ignoringAt: MountComparison.rootIgnores.merging(ignoringAt) { $0.union($1) })
    #expect(comparison.differences.isEmpty, Comment(rawValue: comparison.report), sourceLocation: sourceLocation)
    return comparison
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// sha256 hex of a string's bytes, as snapshots record contents.
func sha(_ content: [UInt8]) -> String { StrataHash.SHA256Hasher.hex(of: content) }
