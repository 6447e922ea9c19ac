import Testing
import Glibc
import StrataHash
import StrataOCI
import StrataSystem
import StrataTestSupport

/// Indexing a layer of a million entries (and merging it into a tree) holds a bounded amount
/// of memory, not all of its entries (issue 13: at most 150 MB for a cold mount whatever the
/// entry count; a layer of 2 million tiny files peaked at 569 MB).
@Suite(.mountTimeLimit) struct MetadataMemoryTests {
    /// A gzip layer of `count` entries: directories of 1000 empty files, as ustar headers.
    static func manyFilesLayer(_ count: Int, in dir: TempDirectory) throws -> (blob: [UInt8], diffID: Digest) {
        var template = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { template[at + i] = b } }
        put("0000644\0", 100); put("0001750\0", 108); put("0001750\0", 116); put("00000000000\0", 124)
        put("14524751000\0", 136); put("ustar\u{0}00", 257); put("user", 265); put("user", 297)
        func header(_ name: String, directory: Bool) -> [UInt8] {
            var h = template
            for i in 0..<100 { h[i] = 0 }
            for (i, b) in name.utf8.enumerated() { h[i] = b }
            h[156] = directory ? UInt8(ascii: "5") : UInt8(ascii: "0")
            if directory { for (i, b) in "0000755\0".utf8.enumerated() { h[100 + i] = b } }
            for i in 148..<156 { h[i] = UInt8(ascii: " ") }
            let sum = h.reduce(0) { $0 + Int($1) }
            for (i, b) in String(format: "%06o", sum).utf8.enumerated() { h[148 + i] = b }
            h[154] = 0
            return h
        }
        let tarPath = dir.child("layer.tar")
        let fd = try FileDescriptor.open(tarPath, O_WRONLY | O_CREAT | O_TRUNC, mode: 0o644)
        let hasher = SHA256Hasher()
        var chunk: [UInt8] = []
        func emit(_ bytes: [UInt8]) throws {
            chunk += bytes
            if chunk.count >= 1 << 20 { hasher.update(chunk); try fd.writeAll(chunk); chunk.removeAll(keepingCapacity: true) }
        }
        var n = 0, d = 0
        while n < count {
            try emit(header("d\(d)/", directory: true))
            n += 1
            for f in 0..<min(999, count - n) { try emit(header("d\(d)/file-\(f).txt", directory: false)) }
            n += min(999, count - n)
            d += 1
        }
        try emit([UInt8](repeating: 0, count: 1024))
        hasher.update(chunk); try fd.writeAll(chunk)
        fd.close()
        let gz = try Command.run("gzip", ["-1", "-k", "-f", tarPath], timeout: 300)
        try #require(gz.succeeded, "gzip: \(gz.stderr)")
        unlink(tarPath)
        return (try FileIO.readAll(tarPath + ".gz"), Digest(sha256Hex: hasher.finalizeHex()))
    }

    /// The peak resident memory (KiB) of `strata index --cache CACHE IMAGE`, as the kernel counts it.
    static func indexPeakKiB(cache: String, image: String) throws -> (peakKiB: Int, stdout: String) {
        let measure = "import resource, subprocess, sys\n"
            + "r = subprocess.run(sys.argv[1:])\n"
            + "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            + "sys.exit(r.returncode)\n"
        let run = try Command.run("python3", ["-c", measure, try StrataBinary.path(), "index", "--cache", cache, image], timeout: 600)
        try #require(run.succeeded, "strata index: \(run.stderr)")
        return (try #require(run.stdoutString.split(separator: "\n").last.flatMap { Int($0) }), run.stdoutString)
    }

    /// A large file the tar reader skips is hashed where the decoder holds it, a megabyte at a
    /// time: the compressed bytes the span hasher keeps are let go as it goes (skipping a
    /// whole file in one call once held the file's compressed bytes until its end).
    @Test func skippingALargeFileHoldsNoCopyOfIt() throws {
        let dir = try TempDirectory()
        let size = 160 << 20
        let script = "head -c \(size) /dev/urandom > big && tar --format=pax -cf layer.tar big && rm big "
            + "&& sha256sum layer.tar | cut -c1-64 && gzip -1 layer.tar"
        let made = try Command.run("sh", ["-c", "cd '\(dir.path)' && \(script)"], timeout: 300)
        try #require(made.succeeded, "making the layer: \(made.stderr)")
        let diffHex = String(made.stdoutString.prefix(64))
        let image = try ImageBuilder(layout: dir.child("image"))
        try image.addRawLayer(blob: try FileIO.readAll(dir.child("layer.tar.gz")), mediaType: MediaType.ociLayerGzip,
                              diffID: Digest(sha256Hex: diffHex))
        unlink(dir.child("layer.tar.gz"))
        try image.write(tag: "t")
        let (peakKiB, _) = try Self.indexPeakKiB(cache: dir.child("cache"), image: image.reference("t"))
        #expect(peakKiB <= 120 * 1000, "strata index of a layer holding one 160 MiB file peaked at \(peakKiB) KiB")
    }

    @Test func indexingAMillionEntriesStaysUnder150MB() throws {
        let dir = try TempDirectory()
        let (blob, diffID) = try Self.manyFilesLayer(1_000_000, in: dir)
        let image = try ImageBuilder(layout: dir.child("image"))
        try image.addRawLayer(blob: blob, mediaType: MediaType.ociLayerGzip, diffID: diffID)
        try image.write(tag: "t")
        // The peak resident memory of `strata index` (its children: only it), as the kernel counts it.
        let measure = "import resource, subprocess, sys\n"
            + "r = subprocess.run(sys.argv[1:])\n"
            + "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
            + "sys.exit(r.returncode)\n"
        let run = try Command.run("python3", ["-c", measure, try StrataBinary.path(), "index", "--cache", dir.child("cache"),
                                              image.reference("t")], timeout: 600)
        try #require(run.succeeded, "strata index: \(run.stderr)")
        let peakKiB = try #require(run.stdoutString.split(separator: "\n").last.flatMap { Int($0) })
        #expect(run.stdoutString.contains("1000000 entries"))
        #expect(peakKiB <= 150 * 1000, "strata index of 1M entries peaked at \(peakKiB) KiB")
    }

    /// A cold mount of a million-entry layer: indexing it, merging it into the tree (the union
    /// is still built in memory, a few dozen bytes per entry) and writing the tree peak under
    /// 150 MB, measured over the supervisor and the server it starts (all waited for).
    @Test func coldMountOfAMillionEntriesStaysUnder150MB() throws {
        let dir = try TempDirectory()
        let (blob, diffID) = try Self.manyFilesLayer(1_000_000, in: dir)
        let image = try ImageBuilder(layout: dir.child("image"))
        try image.addRawLayer(blob: blob, mediaType: MediaType.ociLayerGzip, diffID: diffID)
        try image.write(tag: "t")
        let mountpoint = try dir.makeDirectory("mnt")
        defer { if Mounts.isMounted(mountpoint) { _ = try? Command.run("umount", ["-l", mountpoint], timeout: 60) } }
        let measure = "import os, resource, subprocess, sys, time\n"
            + "mnt = sys.argv[1]\n"
            + "p = subprocess.Popen(sys.argv[2:])\n"
            + "while not os.path.ismount(mnt):\n"
            + "    if p.poll() is not None: sys.exit('strata mount ended with %d' % p.returncode)\n"
            + "    time.sleep(0.05)\n"
            + "subprocess.run(['umount', mnt], check=True)\n"
            + "p.wait()\n"
            + "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
        let run = try Command.run("python3", ["-c", measure, mountpoint, try StrataBinary.path(), "mount", "--foreground",
                                              "--cache", dir.child("cache"), image.reference("t"), mountpoint], timeout: 600)
        try #require(run.succeeded, "strata mount: \(run.stderr)")
        let peakKiB = try #require(run.stdoutString.split(separator: "\n").last.flatMap { Int($0) })
        #expect(peakKiB <= 150 * 1000, "a cold mount of 1M entries peaked at \(peakKiB) KiB")
    }
}
