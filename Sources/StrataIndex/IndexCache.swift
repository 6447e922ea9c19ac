import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Layer indexes on disk, keyed by the layer's compressed digest and shared by every image that
/// uses the layer. Files are written atomically (temporary file, rename); a file that fails
/// validation is removed and rebuilt. Two processes indexing the same layer at once both succeed:
/// they write the same bytes and the last rename wins.
public final class IndexCache: @unchecked Sendable {
    public let directory: String

    public init(directory: String) throws {
        self.directory = directory
        do { try FileIO.makeDirectories(directory + "/index/sha256") } catch {
            throw IndexError("cache \(directory): \(error)")
        }
    }

    /// The default: /var/cache/strata as root, $XDG_CACHE_HOME/strata (or ~/.cache/strata) otherwise.
    public static var defaultDirectory: String {
        if getuid() == 0 { return "/var/cache/strata" }
        if let xdg = getenv("XDG_CACHE_HOME"), xdg.pointee != 0 { return String(cString: xdg) + "/strata" }
        if let home = getenv("HOME") { return String(cString: home) + "/.cache/strata" }
        return "/tmp/strata-cache-\(getuid())"
    }

    public func indexPath(digestHex: String) -> String { "\(directory)/index/sha256/\(digestHex)" }
    public func dataPath(digestHex: String) -> String { "\(directory)/data/sha256/\(digestHex).tar" }

    public func treePath(keyHex: String) -> String { "\(directory)/tree/sha256/\(keyHex)" }

    /// The cached index if present and valid (`verify`: see `LayerIndex.init(path:verify:)`).
    public func load(digestHex: String, verify: Bool = true) -> LayerIndex? {
        let path = indexPath(digestHex: digestHex)
        guard FileIO.exists(path) else { return nil }
        if let index = try? LayerIndex(path: path, verify: verify), index.digestHex == digestHex { return index }
        unlink(path)   // never trust a damaged index: rebuild it
        return nil
    }

    /// Returns the layer's index, building it (and verifying the blob) when it is not cached.
    public func index(_ blob: LayerBlob, verify: Bool = true) throws -> (index: LayerIndex, built: Bool) {
        if let index = load(digestHex: blob.digestHex, verify: verify) {
            guard index.blobSize == blob.size, index.compression == blob.compression else {
                throw IndexError("\(blob.name): cached index disagrees with the descriptor (size or media type)")
            }
            return (index, false)
        }
        let bytes = try IndexBuilder.build(blob)
        TestGate.pass("STRATA_TEST_INDEX_GATE")   // tests: hold a built index before it is written
        let path = indexPath(digestHex: blob.digestHex)
        do { try FileIO.writeAtomically(path, bytes) } catch {
            throw IndexError("cache \(directory): cannot write index for \(blob.name): \(error)")
        }
        return (try LayerIndex(path: path), true)
    }
}
