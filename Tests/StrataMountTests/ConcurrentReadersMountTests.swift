#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation
import StrataIndex
import StrataSystem
import StrataTestSupport
import Synchronization
import Testing

/// Many readers at once (issue 13): threads and processes reading different files of one mount,
/// read-only and writable, get exactly the layout's bytes and all finish; and a small file read
/// on a fresh mount costs the inflate of little more than itself, not of its whole span.
@Suite(.enabled(if: getuid() == 0 && StrataBinary.isBuilt, "needs root and a built strata"), .mountTimeLimit)
struct ConcurrentReadersMountTests {
    /// Two gzip layers: files of many sizes spread over several 4 MiB spans of each stream, a
    /// large file several readers read at different places, and files of the lower layer the
    /// upper one replaces.
    static func files() -> [(path: String, content: [UInt8])] {
        var out: [(String, [UInt8])] = []
        for i in 0..<120 {
            let size = [700, 9_000, 70_000, 300_000, 1_100_000][i % 5] + i * 37
            out.append(("d\(i % 6)/f\(i)", Items.pseudoRandom(count: size, seed: UInt64(i + 1))))
        }
        out.append(("big", Items.pseudoRandom(count: 12 << 20, seed: 99)))
        return out
    }

    static let upperFiles: [(path: String, content: [UInt8])] =
        (0..<30).map { i in ("d\(i % 6)/f\(i * 4)", Items.pseudoRandom(count: 50_000 + i * 4099, seed: UInt64(500 + i))) }
        + [("top/new", Items.pseudoRandom(count: 2 << 20, seed: 7))]

    /// What the view shows: the lower files, replaced where the upper layer has its own.
    static func expected() -> [String: [UInt8]] {
        var view: [String: [UInt8]] = [:]
        for f in files() { view[f.path] = f.content }
        for f in upperFiles { view[f.path] = f.content }
        return view
    }

    static func image(_ temp: TempDirectory) throws -> ImageBuilder {
        func items(_ files: [(path: String, content: [UInt8])]) -> [TarItem] {
            Set(files.map { String($0.path.split(separator: "/").first!) }).filter { name in files.contains { $0.path.hasPrefix(name + "/") } }
                .sorted().map { Items.dir($0) } + files.map { Items.file(Array($0.path.utf8), $0.content) }
        }
        return try makeImage(temp, layers: [items(files()), items(upperFiles)])
    }

    /// Reads every file of `view` in `mountpoint`, split between `threads` threads, plus four
    /// threads reading `big` at different places in 64 KiB steps; returns what differed.
    static func readConcurrently(_ mountpoint: String, _ view: [String: [UInt8]], threads: Int) -> [String] {
        let paths = view.keys.sorted()
        let failures = Mutex<[String]>([])
        let big = view["big"]!
        DispatchQueue.concurrentPerform(iterations: threads + 4) { worker in
            if worker >= threads {
                // Four sequential readers of one file, each from its own quarter.
                let quarter = big.count / 4
                let from = (worker - threads) * quarter
                guard let got = readRange(mountpoint + "/big", offset: from, count: quarter, step: 64 << 10) else {
                    failures.withLock { $0.append("big@\(from): read failed") }
                    return
                }
                if got != Array(big[from..<(from + quarter)]) { failures.withLock { $0.append("big@\(from): wrong bytes") } }
                return
            }
            for path in stride(from: worker, to: paths.count, by: threads).map({ paths[$0] }) {
                guard let got = try? FileIO.readAll(mountpoint + "/" + path) else {
                    failures.withLock { $0.append("\(path): read failed") }
                    continue
                }
                if got != view[path]! { failures.withLock { $0.append("\(path): \(got.count) bytes, wrong") } }
            }
        }
        return failures.withLock { $0 }
    }

    /// `count` bytes at `offset`, read in `step`-byte preads in order; nil on an error.
    static func readRange(_ path: String, offset: Int, count: Int, step: Int) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = out.withUnsafeMutableBytes { b in
                pread(fd, b.baseAddress! + done, min(step, count - done), off_t(offset + done))
            }
            guard n > 0 else { return nil }
            done += n
        }
        return out
    }

    @Test(arguments: ["read-only", "writable"])
    func threadsReadingDifferentFilesGetTheirBytes(mode: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.image(temp)
        let mountpoint = temp.child("mnt")
        let extra = ["--cache", temp.child("cache")] + (mode == "writable" ? ["--upper", temp.child("upper")] : [])
        let mount = try MountGuard(image: builder.reference("test"), mountpoint: mountpoint, extraArgs: extra)
        defer { try? mount.unmount() }
        let failures = Self.readConcurrently(mountpoint, Self.expected(), threads: 12)
        #expect(failures.isEmpty, "\(failures)")
        try mount.unmount()
    }

    /// Processes, not threads: eight `cat`s at once over disjoint shares of the files, checked
    /// by digest against the layout's bytes.
    @Test func processesReadingDifferentFilesGetTheirBytes() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try Self.image(temp)
        let mountpoint = temp.child("mnt")
        let mount = try MountGuard(image: builder.reference("test"), mountpoint: mountpoint,
                                   extraArgs: ["--cache", temp.child("cache")])
        defer { try? mount.unmount() }
        let view = Self.expected()
        let paths = view.keys.sorted()
        let shares = (0..<8).map { k in paths.enumerated().filter { $0.offset % 8 == k }.map(\.element) }
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: shares.count) { k in
            // sha256sum prints one "DIGEST  PATH" line per file, in order.
            let result = try? Command.run("/usr/bin/sha256sum", shares[k].map { mountpoint + "/" + $0 }, timeout: 120)
            guard let result, result.succeeded else {
                failures.withLock { $0.append("share \(k): sha256sum failed: \(result?.stderr ?? "")") }
                return
            }
            let lines = String(decoding: result.stdout, as: UTF8.self).split(separator: "\n")
            for (path, line) in zip(shares[k], lines) where line.split(separator: " ").first.map(String.init) != sha(view[path]!) {
                failures.withLock { $0.append("\(path): wrong digest") }
            }
            if lines.count != shares[k].count { failures.withLock { $0.append("share \(k): \(lines.count) digests") } }
        }
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 })")
        try mount.unmount()
    }

    /// A 10 KiB file inside a 512 KiB span: reading it on a fresh mount inflates its span only up
    /// to the file (rounded up to the partial-decode step), not the whole span, and reads
    /// nothing ahead (one small read is no stream). `mount --stats` reports both; where the
    /// span starts comes from the layer's cached index.
    @Test func aSmallFileInflatesLittleMoreThanItself() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        // Incompressible filler (stored deflate blocks, so checkpoints land within a block
        // past each 512 KiB), the small file a quarter MiB into the span after 4 MiB, then
        // more filler so that span is a full one.
        let small = Items.pseudoRandom(count: 10 << 10, seed: 5)
        let builder = try makeImage(temp, layers: [[
            Items.file(Array("a".utf8), Items.incompressible(count: (4 << 20) + (256 << 10), seed: 3)),
            Items.file(Array("small".utf8), small),
            Items.file(Array("z".utf8), Items.incompressible(count: 6 << 20, seed: 11)),
        ]])
        let mountpoint = temp.child("mnt")
        let stats = temp.child("stats.json")
        let mount = try MountGuard(image: builder.reference("test"), mountpoint: mountpoint,
                                   extraArgs: ["--cache", temp.child("cache"), "--stats", stats])
        defer { try? mount.unmount() }
        #expect(try FileIO.readAll(mountpoint + "/small") == small)
        try mount.unmount()
        let written = Mounts.waitUntil(seconds: 30) { FileIO.exists(stats) }
        try #require(written, "no --stats file")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(FileIO.readAll(stats))) as? [String: Any])
        let inflated = try #require(json["inflatedBytes"] as? Int)
        let served = try #require(json["servedBytes"] as? Int)
        #expect(served == small.count)
        // Its span, from the index: the decode runs from the span's start to the file's end
        // (plus the 16 KiB decode step), well short of the span's end.
        let index = try #require(LayerCache(existing: temp.child("cache")).load(digestHex: builder.layers[0].descriptor.digest.hex))
        let entry = try #require((0..<index.entryCount).map { index.entry($0) }.first { $0.path == Array("small".utf8) })
        let span = index.checkpointIndex(containing: entry.dataOffset)
        let start = index.checkpointOffsets(span).uncompressed
        let fileEnd = entry.dataOffset + entry.size
        try #require(index.spanEnd(span) - fileEnd >= 128 << 10, "the fixture's file lies at the end of its span")
        #expect(inflated > 0)
        #expect(UInt64(inflated) <= fileEnd - start + (32 << 10), "inflated \(inflated) bytes to read \(small.count), span from \(start)")
    }
}
