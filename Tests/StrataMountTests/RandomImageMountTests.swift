import Testing
import StrataTar
import StrataTestSupport

/// Images no one wrote by hand: each seed makes one to four layers of random entries over a
/// small pool of names, so layers replace, hide, merge and hardlink one another's names, and
/// the mount must show what `umoci unpack` makes of the same image, entry by entry (type, mode,
/// owner, times, size, contents, link targets, devices, xattrs, hardlink groups).
///
/// The images are valid by construction: a model of the unpacked tree, kept while generating,
/// keeps out what extractors refuse or order-dependent cases the spec leaves open (an entry
/// under a non-directory, a hardlink to nothing, a whiteout after entries it would touch). So
/// umoci failing fails the test too. A failing seed is rebuilt alike by running that seed alone.
/// A quarter of the seeds are mounted writable (an empty upper): the same tree through the
/// writable view.
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct RandomImageMountTests {
    @Test(arguments: 0..<24)
    func mountMatchesUmoci(seed: UInt64) throws {
        var random = SplitMix(seed: seed &+ 0x5eed)
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        var model = TreeModel()
        let layers = (0..<random.int(in: 1...4)).map { _ in model.layer(&random) }
        // A third of the seeds plain tar, a third zstd (umoci reads gzip only: its reference is
        // the same layers gzipped), the rest gzip; GNU headers on some.
        let compression: ImageBuilder.Compression = [.gzip, .none, .zstd][Int(seed % 3)]
        let format: TarWriter.Format = model.usedXattrs || seed % 4 != 1 ? .pax : .gnu
        let reference = try ImageBuilder(layout: temp.child("reference"))
        let mounted = try ImageBuilder(layout: temp.child("mounted"))
        for entries in layers {
            try reference.addLayer(entries: entries, format: format, compression: compression == .zstd ? .gzip : compression)
            try mounted.addLayer(entries: entries, format: format, compression: compression)
        }
        try reference.write(tag: "t")
        try mounted.write(tag: "t")
        let writable = seed % 4 == 2
        let c = try MountComparison.run(layout: reference.layout, tag: "t", mountedImage: mounted.reference("t"), writable: writable)
        #expect(c.differences.isEmpty, "seed \(seed)\(writable ? " (writable)" : ""): \(c.report)")
        #expect(c.mounted.entries.count > 1, "seed \(seed) made an empty tree")
    }
}

/// What the unpacked tree holds after each layer, as an extractor applies it in order.
struct TreeModel {
    enum Kind { case directory, file, other }
    private(set) var kinds: [String: Kind] = [:]
    private(set) var usedXattrs = false
    static let names = ["a", "b", "c", "d", "é", "x y", String(repeating: "L", count: 120)]

    /// One layer: its whiteouts first (as image tools write them), then random entries.
    mutating func layer(_ r: inout SplitMix) -> [TarItem] {
        var items: [TarItem] = []
        for _ in 0..<r.int(in: 0...2) where !kinds.isEmpty {
            let path = r.pick(kinds.keys.sorted())
            if kinds[path] == .directory && r.chance(40) {
                items.append(Items.opaque(path))
                removeBelow(path)
            } else {
                items.append(Items.whiteout(path))
                removeBelow(path)
                kinds[path] = nil
            }
        }
        for _ in 0..<r.int(in: 3...20) {
            if let item = entry(&r) { items.append(item) }
        }
        return items
    }

    private mutating func entry(_ r: inout SplitMix) -> TarItem? {
        var parts = (0..<r.int(in: 1...3)).map { _ in r.pick(Self.names) }
        let directories = kinds.filter { $0.value == .directory }.keys.sorted()
        if !directories.isEmpty && r.chance(30) {
            // Two levels below a directory the tree holds: the first one implied.
            parts = r.pick(directories).split(separator: "/").map(String.init) + [r.pick(Self.names), r.pick(Self.names)]
        }
        let path = parts.joined(separator: "/")
        // Every parent a directory, or missing (made as an implied one).
        for i in 1..<parts.count {
            let parent = parts[..<i].joined(separator: "/")
            if let k = kinds[parent], k != .directory { return nil }
        }
        let mode = r.pick([0o644, 0o755, 0o600, 0o4755, 0o2755, 0o2775, 0o1777, 0o444, 0o000] as [UInt32])
        let uid = r.pick([0, 0, 1000, 65534, 2_097_157] as [UInt32]), gid = r.pick([0, 0, 100, 2_097_159] as [UInt32])
        let mtime = r.pick([0, 1, 1_600_000_000, 1_700_000_000] as [Int64])
        let nanoseconds = r.chance(30) ? UInt32(r.int(in: 1...999_999_999)) : 0
        var xattrs: [String: [UInt8]] = [:]
        if r.chance(15) {
            xattrs["user.k\(r.int(in: 0...2))"] = Array(r.pick(["v", "value two", String(repeating: "x", count: 100)]).utf8)
            usedXattrs = true
        }
        let item: TarItem
        let kind: Kind
        switch r.int(in: 0...99) {
        case 0..<40:
            let size = r.pick([0, 1, 100, 5000, 70000, 300_000, 1_500_000])
            let content = r.chance(50) ? Items.pseudoRandom(count: size, seed: r.next()) : Items.incompressible(count: size, seed: r.next())
            item = Items.file(Array(path.utf8), content, mode: mode, uid: uid, gid: gid, mtime: mtime,
                              nanoseconds: nanoseconds, xattrs: xattrs)
            kind = .file
        case 40..<62:
            item = Items.dir(path, mode: mode, uid: uid, gid: gid, mtime: mtime, nanoseconds: nanoseconds, xattrs: xattrs)
            kind = .directory
        case 62..<74:
            let target = r.pick(["/" + r.pick(Self.names), r.pick(Self.names) + "/" + r.pick(Self.names), "../x", "/nonexistent",
                                 String(repeating: "t", count: 200), "./a/"])
            item = Items.symlink(path, to: target, uid: uid, gid: gid, mtime: mtime)
            kind = .other
        case 74..<86:
            // A hardlink to a regular file the tree holds (this layer's or a lower one's), not
            // inside the directory it would replace.
            let files = kinds.filter { $0.value == .file && $0.key != path && !$0.key.hasPrefix(path + "/") }.keys.sorted()
            guard !files.isEmpty else { return nil }
            item = Items.hardlink(path, to: r.pick(files))
            kind = .file
        case 86..<92:
            item = Items.fifo(path, mode: mode, mtime: mtime)
            kind = .other
        default:
            item = r.chance(50) ? Items.charDevice(path, major: r.pick([1, 300]), minor: r.pick([3, 70000]), mode: mode, mtime: mtime)
                                : Items.blockDevice(path, major: 8, minor: 1, mode: mode, mtime: mtime)
            kind = .other
        }
        for i in 1..<parts.count where kinds[parts[..<i].joined(separator: "/")] == nil {
            kinds[parts[..<i].joined(separator: "/")] = .directory
        }
        // A directory over a directory merges; anything else replaces what was there.
        if !(kind == .directory && kinds[path] == .directory) { removeBelow(path) }
        kinds[path] = kind
        return item
    }

    private mutating func removeBelow(_ path: String) {
        for key in kinds.keys where key.hasPrefix(path + "/") { kinds[key] = nil }
    }
}
