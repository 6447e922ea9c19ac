import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Layer indexes on disk, keyed by the layer's compressed digest and shared by every image that
/// uses the layer. Files are written atomically (temporary file, rename); a file that fails
/// validation is removed and rebuilt. Two processes indexing the same layer at once both succeed:
/// they write the same bytes and the last rename wins.
public final class IndexCache: Sendable {
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
    /// A zstd layer's re-encoded copy (independent frames, see `FrameRecoder`), when it needs one.
    public func dataPath(digestHex: String) -> String { "\(directory)/data/sha256/\(digestHex).zst" }

    public func treePath(keyHex: String) -> String { "\(directory)/tree/sha256/\(keyHex)" }

    /// The layer's diff_id as indexing verified it ("sha256:HEX\n"), beside its index. Written
    /// before the index: an index without it is from an older Strata and is made again. The
    /// file outlives the index harmlessly: a blob's diff_id follows from its digest.
    public func diffIDPath(digestHex: String) -> String { "\(directory)/diffid/sha256/\(digestHex)" }

    /// The verified diff_id of the layer (hex), or nil when none was recorded or it is unreadable.
    public func verifiedDiffID(digestHex: String) -> String? {
        guard let bytes = try? FileIO.readAll(diffIDPath(digestHex: digestHex)), bytes.count == 72,
              bytes.starts(with: Array("sha256:".utf8)), bytes.last == 0x0a else { return nil }
        let hex = bytes[7..<71]
        guard hex.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else { return nil }
        return String(decoding: hex, as: UTF8.self)
    }

    /// The cached index if present and valid (`verify`: see `LayerIndex.init(path:verify:)`),
    /// with its re-encoded copy in place if it has one. A damaged one is removed (and logged):
    /// the caller rebuilds it.
    public func load(digestHex: String, verify: Bool = true) -> LayerIndex? {
        let path = indexPath(digestHex: digestHex)
        guard FileIO.exists(path) else { return nil }
        do {
            let index = try LayerIndex(path: path, verify: verify)
            guard index.digestHex == digestHex else { throw IndexError("index \(path): made for sha256:\(index.digestHex)") }
            if index.copySize > 0 {
                let copy = dataPath(digestHex: digestHex)
                var st = stat()
                guard stat(copy, &st) == 0, UInt64(st.st_size) == index.copySize else {
                    throw IndexDamage(path: copy, "re-encoded copy missing or of the wrong size")
                }
            }
            return index
        } catch {
            // Never trust a damaged index: rebuild it.
            IndexCache.log("\(error); removed, to be rebuilt from the blob")
            unlink(path)
            return nil
        }
    }

    /// Returns the layer's index, building it (and verifying the blob) when it is not cached.
    /// The diff_id `blob` claims is checked either way: against the blob's uncompressed bytes
    /// when indexing, against the diff_id recorded then when the index is cached.
    public func index(_ blob: LayerBlob, verify: Bool = true) throws -> (index: LayerIndex, built: Bool) {
        if let verifiedDiffID = verifiedDiffID(digestHex: blob.digestHex),
           let index = load(digestHex: blob.digestHex, verify: verify) {
            guard index.blobSize == blob.size, index.compression == blob.compression else {
                throw IndexError("\(blob.name): cached index disagrees with the descriptor (size or media type)")
            }
            if let claim = blob.diffID, !claim.matches(hex: verifiedDiffID) {
                throw blob.diffIDMismatch(claim, actualHex: verifiedDiffID, cached: true)
            }
            return (index, false)
        }
        return (try build(blob), true)
    }

    /// Builds the layer's index (and its re-encoded copy, if it needs one) from the blob and
    /// puts them in the cache, replacing what is there. The copy goes in first: an index in
    /// the cache always finds its copy.
    public func build(_ blob: LayerBlob) throws -> LayerIndex {
        let copy = dataPath(digestHex: blob.digestHex)
        let temp = "\(copy).tmp.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do { try FileIO.makeDirectories(directory + "/data/sha256") } catch {
            throw IndexError("cache \(directory): \(error)")
        }
        defer { unlink(temp) }
        let (bytes, diffIDHex) = try IndexBuilder.buildVerified(blob, copyPath: temp)
        TestGate.pass(RuntimeSettings.current.indexGate)   // tests: hold a built index before it is written
        // Not fsynced: every frame carries its checksum, and a copy a crash truncated is found
        // at the next open (its size is in the index) and rebuilt.
        if FileIO.exists(temp), rename(temp, copy) != 0 {
            throw IndexError("cache \(directory): \(SystemError(code: errno, operation: "rename", path: copy))")
        }
        let path = indexPath(digestHex: blob.digestHex)
        do {
            try FileIO.makeDirectories(directory + "/diffid/sha256")
            try FileIO.writeAtomically(diffIDPath(digestHex: blob.digestHex), Array("sha256:\(diffIDHex)\n".utf8))
            try FileIO.writeAtomically(path, bytes)
        } catch {
            throw IndexError("cache \(directory): cannot write index for \(blob.name): \(error)")
        }
        return try LayerIndex(path: path)
    }

    /// One line on stderr (the daemon's log when serving).
    static func log(_ message: String) {
        writeStandardError("strata: \(message)\n")
    }
}
