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

/// `strata mount --record-reads` and `strata convert --record-in` (stargz's "optimized"
/// images): what a workload reads is recorded in order, and the converted layers hold those
/// files first, the tree unchanged.
@Suite(.enabled(if: canCompareMounts, "needs root, umoci and a built strata"), .mountTimeLimit)
struct PrioritizedConvertTests {
    /// Records reading etc/hello (upper layer), big, caps (lower), etc/hello again.
    /// `upper`: a writable mount (its reads of image files go through the same core).
    static func record(_ builder: ImageBuilder, in temp: TempDirectory, upper: Bool = false,
                       whileMounted: (String) throws -> Void = { _ in }) throws -> String {
        let record = temp.child("reads.json")
        let mnt = temp.child("record-mnt")
        let mount = try MountGuard(image: builder.reference("test"), mountpoint: mnt,
                                   extraArgs: ["--cache", temp.child("cache"), "--record-reads", record]
                                       + (upper ? ["--upper", temp.child("upper")] : []))
        defer { try? mount.unmount() }
        for name in ["etc/hello", "big", "caps", "etc/hello"] { _ = try FileIO.readAll(mnt + "/" + name) }
        // Listing and stat are not reads.
        _ = try FileManager.default.contentsOfDirectory(atPath: mnt + "/etc")
        try whileMounted(record)
        // `strata unmount` returns once the daemon has ended, its record written.
        let r = try StrataBinary.run(["unmount", mnt])
        #expect(r.status == 0, "\(r.stderr)")
        return record
    }

    @Test(arguments: [false, true])
    func mountRecordsFirstReadsInOrderWithTheirLayers(upper: Bool) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ConvertTests.makeSource(temp)
        let path = try Self.record(builder, in: temp, upper: upper) { record in
            // Written every few seconds while it grows, not only at unmount.
            #expect(Mounts.waitUntil(seconds: 30) { FileIO.exists(record) })
        }
        let record = try ReadRecord.parse(try FileIO.readAll(path), file: path)
        let manifest = try ImageResolver.resolve(reference: builder.reference("test")).manifestDigest.description
        #expect(record.entries == [ReadRecord.Entry(path: "etc/hello", manifestDigest: manifest, layerIndex: 1),
                                   ReadRecord.Entry(path: "big", manifestDigest: manifest, layerIndex: 0),
                                   ReadRecord.Entry(path: "caps", manifestDigest: manifest, layerIndex: 0)])
        // The stargz form: one JSON object a line with "path" and "layerIndex".
        let first = try #require(String(decoding: try FileIO.readAll(path), as: UTF8.self).split(separator: "\n").first)
        #expect(first.contains("\"path\":\"etc/hello\"") && first.contains("\"layerIndex\":1"))
    }

    @Test(arguments: ["estargz", "zstd:chunked"])
    func convertedLayersStartWithTheRecordedFilesAndMountAsTheSource(_ compression: String) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ConvertTests.makeSource(temp)
        let record = try Self.record(builder, in: temp)
        let r = try StrataBinary.run(["convert", "--compression", compression, "--record-in", record,
                                      builder.reference("test"), "converted"], timeout: 300)
        #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
        let image = try ImageResolver.resolve(reference: builder.reference("converted"))
        let tool = compression == "estargz" ? "gzip" : "zstd"
        func names(_ i: Int) throws -> [String] {
            let blob = builder.blobPath(image.layers[i].descriptor.digest)
            return try Command.check("/bin/sh", ["-c", "\(tool) -dc < '\(blob)' | tar -t"]).stdoutString
                .split(separator: "\n").map(String.init)
        }
        let landmark = compression == "estargz" ? [EStargz.prefetchLandmark] : []
        #expect(Array(try names(0).prefix(2 + landmark.count)) == ["big", "caps"] + landmark)
        // Layer 1 holds no etc/ entry of its own (if it did, it would come just before etc/hello).
        #expect(Array(try names(1).filter { $0 != "etc/" }.prefix(1 + landmark.count)) == ["etc/hello"] + landmark)
        if compression == "zstd:chunked" {
            #expect(image.layers.allSatisfy { $0.descriptor.annotations?[ZstdChunked.prefetchEndAnnotation] != nil })
        }
        // The mount of the converted image is umoci's unpack of the source, entry by entry (the
        // eStargz TOC and landmark entries aside: files of the converted layers).
        let c = try MountComparison.run(layout: builder.layout, tag: "converted", referenceTag: "test")
        let differences = c.differences.filter { !$0.contains(EStargz.tocTarName) && !$0.contains(EStargz.prefetchLandmark) }
        #expect(differences.isEmpty, Comment(rawValue: c.report))
        #expect(c.mounted.entry("big")?.contentSHA256 == sha(Items.pseudoRandom(count: 9 << 20, seed: 3)))
    }

    @Test func badRecordsAndFormats() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let builder = try ConvertTests.makeSource(temp)
        let bad = temp.child("bad.json")
        try FileIO.writeAtomically(bad, Array("{\"path\":\"big\",\"layerIndex\":0}\n{\"path\": 3}\n".utf8))
        let r = try StrataBinary.run(["convert", "--compression", "estargz", "--record-in", bad, builder.reference("test"), "x"])
        #expect(r.status != 0 && r.stderr.contains("\(bad): line 2"), "\(r.stderr)")
        let gzip = try StrataBinary.run(["convert", "--compression", "gzip", "--record-in", bad, builder.reference("test"), "x"])
        #expect(gzip.status == 2 && gzip.stderr.contains("--record-in"), "\(gzip.stderr)")
        // Plain text, one path a line; paths the image lacks are counted on stderr.
        let text = temp.child("paths.txt")
        try FileIO.writeAtomically(text, Array("/caps\nno/such/file\netc/hello\nnot-here\n".utf8))
        let ok = try StrataBinary.run(["convert", "--compression", "estargz", "--record-in", text, "--json",
                                       builder.reference("test"), "y"], timeout: 300)
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stderr == "strata: convert: 2 recorded paths not in \(builder.reference("test"))\n")
        let json = try JSONSerialization.jsonObject(with: Data(ok.stdoutString.utf8)) as? [String: Any]
        #expect((json?["prioritizedFiles"] as? NSNumber)?.intValue == 2, "\(ok.stdoutString)")
    }
}
