import Glibc
import StrataSystem
import StrataTestSupport
import Testing

/// Issue 11, span digests end to end: a layer blob changed in place after it was indexed gives
/// EIO for reads of the changed span, with a daemon log line naming the blob and the offset,
/// never wrong bytes; files in other spans still read.
@Suite(.mountTimeLimit, .enabled(if: Requirement.isRoot, "needs root (mounts with --allow-other)"))
struct SpanDigestMountTests {
    static let compressions: [ImageBuilder.Compression] = [.gzip, .none, .zstdMultiFrame(chunk: 1 << 20)]

    @Test(arguments: compressions)
    func blobChangedAfterIndexingGivesEIO(_ compression: ImageBuilder.Compression) throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let first = Array(String(repeating: "the first file\n", count: 300).utf8)
        let big = Items.pseudoRandom(count: 12 << 20, seed: 5)
        let builder = try makeImage(temp, layers: [[Items.dir("a"), Items.file(Array("a/first".utf8), first),
                                                     Items.file(Array("a/big".utf8), big)]],
                                    compression: compression)
        let cache = temp.child("cache")
        #expect(try StrataBinary.run(["index", "--cache", cache, builder.reference("test")]).status == 0)
        let layer = try #require(builder.layers.first).descriptor.digest
        let blob = builder.blobPath(layer)
        // The middle of the blob is inside a/big, spans away from a/first.
        let size = try FileIO.readAll(blob).count
        let fd = try FileDescriptor.open(blob, O_RDWR)
        var byte: UInt8 = 0
        _ = try withUnsafeMutableBytes(of: &byte) { try fd.readFully(into: $0, at: UInt64(size / 2)) }
        byte ^= 0x10
        try withUnsafeBytes(of: &byte) { try fd.writeAll($0, at: UInt64(size / 2)) }
        fd.close()

        let log = temp.child("log")
        let mnt = try temp.makeDirectory("mnt")
        let guardian = try MountGuard(image: builder.reference("test"), mountpoint: mnt, extraArgs: ["--cache", cache, "--log", log])
        defer { try? guardian.unmount() }
        #expect(try FileIO.readAll(mnt + "/a/first") == first)
        // Reading a/big through fails with EIO (at the changed span); what came before is right.
        let file = open(mnt + "/a/big", O_RDONLY)
        #expect(file >= 0)
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        var code: Int32 = 0
        while true {
            let n = read(file, &buffer, buffer.count)
            if n < 0 { code = errno; break }
            if n == 0 { break }
            got.append(contentsOf: buffer[0..<n])
        }
        close(file)
        #expect(code == EIO)
        #expect(got.count < big.count && got == Array(big.prefix(got.count)))
        // The untouched file still reads after the failure.
        #expect(try FileIO.readAll(mnt + "/a/first") == first)
        try guardian.unmount()
        let text = String(decoding: try FileIO.readAll(log), as: UTF8.self)
        let lines = text.split(separator: "\n").filter { $0.contains("layer \(layer) changed after it was indexed: span ") }
        #expect(!lines.isEmpty, "\(text)")
        #expect(lines.contains { $0.contains("EIO") && $0.contains("/a/big") && $0.contains(" at offset ") }, "\(text)")
    }
}
