#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTar
import StrataTestSupport

/// Issue 10 points 5 and 6 end to end: damaged layer indexes in the cache are rebuilt from the
/// blobs (at the next mount, or by the daemon when a read finds the damage) and every file
/// still reads right; a single-frame zstd layer is served from its framed copy.
@Suite(.enabled(if: getuid() == 0 && StrataBinary.isBuilt, "needs root and a built strata"))
struct IndexDamageMountTests {
    /// Files of three layers: gzip with files across many checkpoints (so index windows),
    /// single-frame zstd larger than a span (so a framed copy), multi-frame zstd.
    static func files() -> [(layer: Int, path: String, content: [UInt8])] {
        var out: [(Int, String, [UInt8])] = []
        out.append((0, "g/big", Items.pseudoRandom(count: 9 << 20, seed: 21)))
        out.append((0, "g/text", Array(String(repeating: "some text, compressible\n", count: 400_000).utf8)))
        for i in 0..<200 { out.append((0, "g/small/f\(i)", Array("file \(i)\n".utf8))) }
        out.append((1, "z/big", Items.pseudoRandom(count: 12 << 20, seed: 22)))
        for i in 0..<50 { out.append((1, "z/small/f\(i)", Array(String(repeating: "z\(i) ", count: i + 1).utf8))) }
        out.append((2, "m/data", Items.pseudoRandom(count: 3 << 20, seed: 23)))
        return out
    }

    static func image(_ temp: TempDirectory) throws -> String {
        let builder = try ImageBuilder(layout: temp.child("layout"))
        let files = Self.files()
        for (layer, compression) in [(0, ImageBuilder.Compression.gzip), (1, .zstd), (2, .zstdMultiFrame(chunk: 1 << 20))] {
            var items: [TarItem] = [Items.dir(["g", "z", "m"][layer])]
            if layer == 0 { items.append(Items.dir("g/small")) }
            if layer == 1 { items.append(Items.dir("z/small")) }
            items += files.filter { $0.layer == layer }.map { Items.file(Array($0.path.utf8), $0.content) }
            try builder.addLayer(entries: items, compression: compression)
        }
        try builder.write(tag: "test")
        return builder.reference("test")
    }

    /// Every file of the image reads back as written; returns the paths that did not.
    static func wrongFiles(under mountpoint: String) -> [String] {
        files().compactMap { f in (try? FileIO.readAll(mountpoint + "/" + f.path)) == f.content ? nil : f.path }
    }

    static func flip(_ path: String, at offset: Int) throws {
        let fd = try FileDescriptor.open(path, O_RDWR)
        defer { fd.close() }
        var byte: UInt8 = 0
        _ = try withUnsafeMutableBytes(of: &byte) { try fd.readFully(into: $0, at: UInt64(offset)) }
        byte ^= UInt8.random(in: 1...255)
        try withUnsafeBytes(of: &byte) { try fd.writeAll($0, at: UInt64(offset)) }
    }

    static func list(_ dir: String) throws -> [String] {
        guard let d = opendir(dir) else { throw SystemError(code: errno, operation: "opendir", path: dir) }
        defer { closedir(d) }
        var names: [String] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    static func indexFiles(_ cache: String) -> [String] {
        ((try? Self.list(cache + "/index/sha256")) ?? []).filter { !$0.contains(".") }.map { cache + "/index/sha256/" + $0 }
    }

    static func u64(_ bytes: [UInt8], _ at: Int) -> Int {
        bytes[at..<(at + 8)].reversed().reduce(0) { $0 << 8 | Int($1) }
    }

    /// Mounts in the foreground (a background shell job) with the daemon's stderr in `log`,
    /// reads every file, unmounts, and returns the files that read wrong and the log.
    static func mountReadAndLog(image: String, cache: String, temp: TempDirectory) throws -> (wrong: [String], log: String) {
        let mountpoint = try temp.makeDirectory("mnt-foreground")
        let log = temp.child("daemon.log")
        let strata = try StrataBinary.path()
        let started = try Command.run("/bin/sh", ["-c", "'\(strata)' mount --foreground --cache '\(cache)' '\(image)' '\(mountpoint)' 2>'\(log)' &"])
        #expect(started.status == 0)
        defer { try? Mounts.forceUnmount(mountpoint) }
        guard Mounts.waitUntil(seconds: 60, { Mounts.isMounted(mountpoint) }) else {
            return (["(not mounted)"], (try? FileIO.readAll(log)).map { String(decoding: $0, as: UTF8.self) } ?? "")
        }
        let wrong = wrongFiles(under: mountpoint)
        try Mounts.forceUnmount(mountpoint)
        // The daemon exits once unmounted; its log is complete then.
        _ = Mounts.waitUntil(seconds: 10) {
            (try? Command.run("pgrep", ["-f", "strata mount --foreground.* \(mountpoint)"]))?.status != 0
        }
        return (wrong, String(decoding: try FileIO.readAll(log), as: UTF8.self))
    }

    /// A first mount fills the cache; returns the image and cache paths.
    static func warmCache(_ temp: TempDirectory) throws -> (image: String, cache: String) {
        let image = try Self.image(temp)
        let cache = temp.child("cache")
        let mountpoint = try temp.makeDirectory("mnt")
        let guardian = try MountGuard(image: image, mountpoint: mountpoint, extraArgs: ["--cache", cache])
        defer { try? guardian.unmount() }
        #expect(wrongFiles(under: mountpoint).isEmpty)
        try guardian.unmount()
        #expect(indexFiles(cache).count == 3)
        return (image, cache)
    }

    @Test func flippedIndexBytesAreRebuiltAtMount() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (image, cache) = try Self.warmCache(temp)
        var flipped: [String] = []
        let trees = ((try? Self.list(cache + "/tree/sha256")) ?? []).map { cache + "/tree/sha256/" + $0 }
        #expect(trees.count == 1)
        for path in Self.indexFiles(cache) + trees {
            let size = try FileIO.readAll(path).count
            // One flip in the header (always checked at open), the others anywhere.
            var positions = [Int.random(in: 0..<256)]
            for _ in 0..<6 { positions.append(Int.random(in: 0..<size)) }
            for p in positions { try Self.flip(path, at: p) }
            flipped.append("\(path.split(separator: "/").last!): \(positions)")
        }
        let (wrong, log) = try Self.mountReadAndLog(image: image, cache: cache, temp: temp)
        #expect(wrong.isEmpty, "flipped \(flipped); daemon log:\n\(log)")
        #expect(log.components(separatedBy: "to be rebuilt from the blob").count - 1 == 3, "daemon log:\n\(log)")
        #expect(log.contains("merged tree"), "daemon log:\n\(log)")
    }

    /// Damage only in the gzip layer's checkpoint windows: the mount opens (windows are not read
    /// then), the first read of a damaged window makes the daemon rebuild the index and retry.
    @Test func flippedWindowBytesAreRebuiltWhileServing() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (image, cache) = try Self.warmCache(temp)
        var damaged = 0
        for path in Self.indexFiles(cache) {
            let bytes = try FileIO.readAll(path)
            let windows = Self.u64(bytes, 96), length = Self.u64(bytes, 104)
            guard length > 0 else { continue }
            for _ in 0..<4 { try Self.flip(path, at: windows + Int.random(in: 0..<length)) }
            damaged += 1
        }
        #expect(damaged == 1)   // only the gzip layer has windows
        let (wrong, log) = try Self.mountReadAndLog(image: image, cache: cache, temp: temp)
        #expect(wrong.isEmpty, "daemon log:\n\(log)")
        #expect(log.contains("rebuilding its index from the blob"), "daemon log:\n\(log)")
    }

    /// The single-frame zstd layer has a framed copy in the cache, much smaller than its data,
    /// and a missing copy is made again at the next mount.
    @Test func singleFrameZstdLayerHasAFramedCopy() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (image, cache) = try Self.warmCache(temp)
        let copies = ((try? Self.list(cache + "/data/sha256")) ?? []).filter { $0.hasSuffix(".zst") }
        #expect(copies.count == 1)
        for name in copies { unlink(cache + "/data/sha256/" + name) }
        let (wrong, log) = try Self.mountReadAndLog(image: image, cache: cache, temp: temp)
        #expect(wrong.isEmpty, "daemon log:\n\(log)")
        #expect(((try? Self.list(cache + "/data/sha256")) ?? []).filter { $0.hasSuffix(".zst") } == copies)
    }
}
