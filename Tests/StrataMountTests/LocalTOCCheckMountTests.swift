#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataOCI
import StrataSeekable
import StrataSystem
import StrataTar
import StrataTestSupport

/// Issue 12 (trust): a local eStargz / zstd:chunked layer is indexed from its TOC, and its tar
/// stream is checked against that TOC (and its diff_id against the config's): at once by
/// `strata index`, in the background after `strata mount` answers. A TOC that lies fails the
/// layer naming it (EIO for its reads, no index left in the cache); an honest layer's diff_id is
/// recorded, and later mounts do not check it again.
@Suite(.enabled(if: getuid() == 0 && StrataBinary.isBuilt, "needs root and a built strata"), .mountTimeLimit)
struct LocalTOCCheckMountTests {
    static let lowerItems: [TarItem] = [Items.dir("etc"), Items.file("etc/hello", "hello\n")]
    static let big = Items.pseudoRandom(count: 200_000, seed: 41)
    static let upperItems: [TarItem] = [
        Items.dir("data"), Items.file(Array("data/big".utf8), big), Items.file("data/small", "small\n"),
    ]

    /// How the upper layer lies; its annotation, manifest and blob digests are all consistent.
    enum Lie: String, CaseIterable, Sendable, CustomTestStringConvertible {
        /// The TOC lists a directory the tar stream does not hold.
        case phantomEntry
        /// The TOC gives a file another mode than the stream's.
        case mode
        /// The TOC is honest; the config's diff_id is not the stream's.
        case diffID
        var testDescription: String { rawValue }
    }

    static func fixture(_ format: TableOfContents.Format, _ items: [TarItem], lie: Lie? = nil) throws -> SeekableBlob {
        var blob: SeekableBlob
        switch format {
        case .estargz:
            blob = try SeekableFixture.estargz(items) { toc in
                switch lie {
                case .phantomEntry:
                    var phantom = EStargzTOCEntry(name: "data/phantom", type: .dir)
                    phantom.mode = 0o755
                    toc.entries.insert(phantom, at: 1)
                case .mode:
                    if let i = toc.entries.firstIndex(where: { $0.name == "data/small" }) { toc.entries[i].mode = 0o600 }
                case .diffID, nil: break
                }
            }
            // The TOC's own idea of the stream's size would give a phantom away before mounting.
            if lie != nil { blob.annotations[EStargz.uncompressedSizeAnnotation] = nil }
        case .zstdChunked:
            blob = try SeekableFixture.zstdChunked(items) { toc in
                switch lie {
                case .phantomEntry:
                    var phantom = ZstdChunkedTOCEntry(type: .dir, name: "data/phantom")
                    phantom.mode = 0o755
                    toc.entries.insert(phantom, at: 1)
                case .mode:
                    if let i = toc.entries.firstIndex(where: { $0.name == "data/small" }) { toc.entries[i].mode = 0o600 }
                case .diffID, nil: break
                }
            }
        }
        if lie == .diffID { blob.diffID = Digest.sha256(of: Array("not this layer".utf8)) }
        return blob
    }

    /// A layout (tag "t") of an honest lower layer and an upper one that lies as `lie` says.
    static func layout(_ temp: TempDirectory, _ format: TableOfContents.Format, lie: Lie?) throws -> (ImageBuilder, [SeekableBlob]) {
        let builder = try ImageBuilder(layout: temp.child("layout"))
        let blobs = [try fixture(format, lowerItems), try fixture(format, upperItems, lie: lie)]
        for b in blobs { try builder.addSeekableLayer(b) }
        try builder.write(tag: "t")
        return (builder, blobs)
    }

    static func status(_ mountpoint: String) throws -> [String: Any] {
        let r = try StrataBinary.subcommand("status", ["--json", mountpoint])
        guard r.succeeded, let json = try JSONSerialization.jsonObject(with: Data(r.stdout)) as? [String: Any] else {
            throw HarnessError("strata status \(mountpoint) failed: \(r.stderr)")
        }
        return json
    }

    static func layer(_ mountpoint: String, _ hex: String) -> [String: Any] {
        let json = (try? status(mountpoint)) ?? [:]
        return (json["layers"] as? [[String: Any]] ?? []).first { $0["digest"] as? String == "sha256:\(hex)" } ?? [:]
    }

    static func text(_ path: String) -> String { (try? String(decoding: FileIO.readAll(path), as: UTF8.self)) ?? "" }

    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked], Lie.allCases)
    func aLyingLayerIsRefusedByIndexAndFailsInTheMount(_ format: TableOfContents.Format, _ lie: Lie) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (builder, blobs) = try Self.layout(temp, format, lie: lie)
        let liar = Digest.sha256(of: blobs[1].blob).hex
        let why = lie == .diffID ? "diff_id mismatch" : "its TOC does not match its tar stream"

        // strata index: non-zero, one line naming the layer and why; no index kept for it.
        let indexCache = temp.child("index-cache")
        let r = try StrataBinary.run(["index", "--cache", indexCache, builder.reference("t")])
        #expect(r.status != 0)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("sha256:\(liar)") && r.stderr.contains(why),
                "\(r.stderr)")
        #expect(!FileIO.exists("\(indexCache)/index/sha256/\(liar)") && !FileIO.exists("\(indexCache)/diffid/sha256/\(liar)"))

        // strata mount: mounts (from the TOCs), then the background check fails the layer.
        let cache = temp.child("cache"), log = temp.child("log"), mnt = try temp.makeDirectory("mnt")
        let mount = try MountGuard(image: builder.reference("t"), mountpoint: mnt, extraArgs: ["--cache", cache, "--log", log])
        defer { try? mount.unmount() }
        let failed = Mounts.waitUntil(seconds: 60) { Self.layer(mnt, liar)["verification"] as? String == "failed" }
        #expect(failed, "\(Self.layer(mnt, liar))\n\(Self.text(log))")
        #expect(readError(mnt + "/data/big") == EIO)
        #expect(try FileIO.readAll(mnt + "/etc/hello") == Array("hello\n".utf8))
        #expect((Self.layer(mnt, liar)["error"] as? String ?? "").contains(why))
        try mount.unmount()
        let text = Self.text(log)
        #expect(text.contains("layer sha256:\(liar): verification failed") && text.contains(why), "\(text)")
        if lie == .phantomEntry { #expect(text.contains("data/phantom"), "\(text)") }
        #expect(!FileIO.exists("\(cache)/index/sha256/\(liar)") && !FileIO.exists("\(cache)/diffid/sha256/\(liar)"))
        // The honest layer was checked and kept.
        let honest = Digest.sha256(of: blobs[0].blob).hex
        #expect(FileIO.exists("\(cache)/index/sha256/\(honest)"))
        #expect(Self.text("\(cache)/diffid/sha256/\(honest)") == "\(blobs[0].diffID)\n")
    }

    /// `strata bundle` mounts through `strata mount`: its rootfs gets the same check.
    @Test func aBundleRootfsChecksItsLayersToo() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (builder, blobs) = try Self.layout(temp, .estargz, lie: .phantomEntry)
        let liar = Digest.sha256(of: blobs[1].blob).hex
        let bundle = temp.child("bundle")
        let r = try StrataBinary.run(["bundle", "--read-only", "--cache", temp.child("cache"), builder.reference("t"), bundle])
        #expect(r.status == 0, "\(r.stderr)")
        defer { _ = try? StrataBinary.run(["bundle", "--remove", bundle]) }
        let rootfs = bundle + "/rootfs"
        let failed = Mounts.waitUntil(seconds: 60) { Self.layer(rootfs, liar)["verification"] as? String == "failed" }
        #expect(failed, "\(Self.layer(rootfs, liar))")
        #expect(readError(rootfs + "/data/big") == EIO)
        #expect(try FileIO.readAll(rootfs + "/etc/hello") == Array("hello\n".utf8))
        let removed = try StrataBinary.run(["bundle", "--remove", bundle])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(!FileIO.exists("\(temp.child("cache"))/index/sha256/\(liar)"))
    }

    /// An honest layout: the mount's check records each layer's diff_id; a second mount finds
    /// it recorded and does not check again (the record is the same file, untouched). With
    /// --background-fetch=off nothing is checked.
    @Test(arguments: [TableOfContents.Format.estargz, .zstdChunked])
    func anHonestLayerIsCheckedOnce(_ format: TableOfContents.Format) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let (builder, blobs) = try Self.layout(temp, format, lie: nil)
        let hexes = blobs.map { Digest.sha256(of: $0.blob).hex }
        let cache = temp.child("cache"), mnt = try temp.makeDirectory("mnt")

        let off = try MountGuard(image: builder.reference("t"), mountpoint: mnt,
                                 extraArgs: ["--cache", cache, "--background-fetch=off"])
        defer { try? off.unmount() }
        for hex in hexes { #expect(Self.layer(mnt, hex)["background"] as? String == "off") }
        #expect(try FileIO.readAll(mnt + "/data/big") == Self.big)
        try off.unmount()
        for hex in hexes { #expect(!FileIO.exists("\(cache)/diffid/sha256/\(hex)")) }

        let first = try MountGuard(image: builder.reference("t"), mountpoint: mnt, extraArgs: ["--cache", cache])
        defer { try? first.unmount() }
        let verified = Mounts.waitUntil(seconds: 60) { hexes.allSatisfy { Self.layer(mnt, $0)["verification"] as? String == "verified" } }
        #expect(verified, "\(hexes.map { Self.layer(mnt, $0) })")
        #expect(try FileIO.readAll(mnt + "/data/big") == Self.big)
        try first.unmount()
        var records: [stat] = []
        for (hex, blob) in zip(hexes, blobs) {
            let path = "\(cache)/diffid/sha256/\(hex)"
            #expect(Self.text(path) == "\(blob.diffID)\n")
            var st = stat()
            #expect(stat(path, &st) == 0)
            records.append(st)
        }

        let second = try MountGuard(image: builder.reference("t"), mountpoint: mnt, extraArgs: ["--cache", cache])
        defer { try? second.unmount() }
        for hex in hexes {
            let layer = Self.layer(mnt, hex)
            #expect(layer["background"] as? String == "not needed" && layer["verification"] as? String == "verified", "\(layer)")
        }
        #expect(try FileIO.readAll(mnt + "/data/small") == Array("small\n".utf8))
        try second.unmount()
        for (hex, old) in zip(hexes, records) {
            var st = stat()
            #expect(stat("\(cache)/diffid/sha256/\(hex)", &st) == 0)
            // Not written again: the same file (a rewrite renames a new one into place).
            #expect(st.st_ino == old.st_ino && st.st_mtim.tv_sec == old.st_mtim.tv_sec && st.st_mtim.tv_nsec == old.st_mtim.tv_nsec)
        }
    }
}
