#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTestSupport

/// A writable mount lets the kernel keep entries, attributes and pages of image files never
/// copied up as long as a read-only mount does (issue 13: each file a reader opened cost
/// LOOKUP, GETATTR, OPEN, FLUSH and RELEASE with 1 s timeouts and no page cache kept), and what
/// it keeps never outlives a write or a copy-up.
@Suite(.serialized, .mountTimeLimit) struct UpperKernelCacheTests {
    static let lower = """
    mkdir -p r s
    for i in $(seq 1 20); do printf "read $i" > r/f$i; printf "stat $i" > s/g$i; done
    """

    /// The request counts `STRATA_FUSE_STATS` wrote at unmount: op name to count.
    static func requestCounts(_ path: String) throws -> [String: Int] {
        let written = Mounts.waitUntil(seconds: 30) { FileIO.exists(path) }
        try #require(written, "no request statistics at \(path)")
        var counts: [String: Int] = [:]
        for line in String(decoding: try FileIO.readAll(path), as: UTF8.self).split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            if fields.count >= 2, let n = Int(fields[1]) { counts[String(fields[0])] = n }
        }
        return counts
    }

    /// Twenty files read and twenty only stat'ed, by name, twice with 1.5 s between (longer
    /// than the 1 s timeouts of what is in the upper): the second pass reads nothing again
    /// (pages kept between opens), looks nothing up again (entries kept), and no close sends a
    /// FLUSH (no open needs one: writes are never buffered, and a close must never wait on the
    /// server).
    @Test func filesNeverCopiedUpAreKeptLikeAReadOnlyMounts() throws {
        let f = try UpperFixture(extraLower: Self.lower)
        let reads = (1...20).map { "r/f\($0)" }.joined(separator: " ")
        let stats20 = (1...20).map { "s/g\($0)" }.joined(separator: " ")
        let pass = "cat \(reads) >/dev/null; stat -c %s \(stats20) >/dev/null"
        var counts: [String: Int] = [:]
        // A drop_caches by another process on the machine empties what the kernel kept, as
        // for any file system: an attempt it lands in is repeated (at most three).
        for attempt in 1...3 {
            let stats = f.temp.child("requests-\(attempt).txt")
            try f.mount(environment: ["STRATA_FUSE_STATS": stats])
            try f.run("\(pass); sleep 1.5; \(pass)")
            #expect(try f.run("cat r/f7") == "read 7")
            // Opens for writing (a create, a copy-up by append) need no FLUSH either.
            #expect(try f.run("printf new > w1; printf ' more' >> s/g20; cat w1 s/g20") == "newstat 20 more")
            try f.unmount()
            counts = try Self.requestCounts(stats)
            if counts["read", default: 0] < 30 && counts["lookup", default: 0] < 60 { break }
        }
        #expect(counts["flush"] == nil, "\(counts)")
        // One READ per file in the first pass; the second pass and the last cat find the pages.
        #expect(counts["read", default: 0] >= 20 && counts["read", default: 0] < 30, "\(counts)")
        // 40 names (and r, s) looked up once; with 1 s entry timeouts the second pass looks
        // up all 40 again.
        #expect(counts["lookup", default: 0] < 60, "\(counts)")
        #expect(counts["open", default: 0] >= 41, "\(counts)")
    }

    /// Pages and attributes the kernel kept of an image file follow every change made through
    /// the mount: a write through another name (hard link), a rewrite with O_TRUNC, a write
    /// after a read-only open was made, a chmod (copy-up of metadata); another process, and
    /// the handle opened before the change, read the new bytes.
    @Test func keptPagesFollowWritesAndCopyUps() throws {
        let f = try UpperFixture(extraLower: Self.lower)
        try f.mount()
        // Read (pages kept), then changed through the other name of the hard link.
        #expect(try f.run("cat etc/hosts2") == "hello")
        let early = try FileDescriptor.open(f.path("r/f1"), O_RDONLY)
        #expect(try Self.pread(early, 64) == "read 1")
        try f.run("printf 'HELLO world' > etc/hosts")
        #expect(try f.run("cat etc/hosts2; stat -c %s etc/hosts2") == "HELLO world11\n")
        #expect(statOf(f.upper + "/etc/hosts2") != nil)
        // Written in place after being read; the handle opened before the copy-up sees it too.
        try f.run("cat r/f1 r/f2 >/dev/null; printf X | dd of=r/f1 bs=1 seek=2 conv=notrunc status=none")
        #expect(try f.run("cat r/f1") == "reXd 1")
        #expect(try Self.pread(early, 64) == "reXd 1")
        // Its pages dropped, the handle opened before the copy-up reads through the daemon,
        // which must serve the copy, not the layers.
        #expect(posix_fadvise(early.rawValue, 0, 0, POSIX_FADV_DONTNEED) == 0)
        #expect(try Self.pread(early, 64) == "reXd 1")
        early.close()   // before the unmount: an open file would keep the daemon serving
        // Grown by an append, then truncated through a path the kernel knows.
        try f.run("printf ' more' >> r/f2")
        #expect(try f.run("cat r/f2; stat -c %s r/f2") == "read 2 more11\n")
        try f.run("truncate -s 3 r/f2")
        #expect(try f.run("cat r/f2") == "rea")
        // A metadata copy-up: the mode is the new one, the bytes the same.
        try f.run("cat s/g3 >/dev/null; chmod 600 s/g3")
        #expect(try f.run("stat -c %a s/g3; cat s/g3") == "600\nstat 3")
        // Written through a shared mapping after its descriptor was closed (a close sends no
        // FLUSH, so nothing is written back then): the unmap writes the page.
        try f.run("python3 -c \"import mmap; f = open('r/f3', 'r+b'); m = mmap.mmap(f.fileno(), 0); f.close(); m[0:1] = b'R'; m.close()\"")
        #expect(try f.run("cat r/f3") == "Read 3")
        // After a remount the upper's bytes are what is read.
        try f.unmount()
        try f.mount()
        #expect(try f.run("cat etc/hosts2 r/f1 r/f2 r/f3") == "HELLO worldreXd 1reaRead 3")
        try f.unmount()
    }

    static func pread(_ fd: FileDescriptor, _ count: Int) throws -> String {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { Glibc.pread(fd.rawValue, $0.baseAddress, count, 0) }
        try #require(n >= 0, "pread failed: errno \(errno)")
        return String(decoding: buffer[0..<n], as: UTF8.self)
    }
}
