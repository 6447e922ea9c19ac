import Testing
@testable import StrataTar
import StrataTestSupport

private let good: [UInt8] = {
    let data = [UInt8](repeating: 0x61, count: 1000)
    return try! TarWriter.archive([(TarEntry(path: bytes("file"), type: .regular, size: 1000), data)])
}()

@Test func badChecksum() throws {
    let garbage = [UInt8](repeating: 0x78, count: 512)
    let e = try #require(readError(garbage))
    #expect(e.message == "bad header checksum")
    #expect(e.offset == 0)
    // After a valid entry: the offset names the broken header.
    let e2 = try #require(readError(Array(good.prefix(1536)) + garbage))
    #expect(e2.message == "bad header checksum")
    #expect(e2.offset == 1536)
    #expect(e2.description.contains("1536"))
}

@Test func signedChecksumAccepted() throws {
    // Old tars summed bytes as signed chars; a high byte in the name makes the sums differ.
    var h = rawHeader(name: "x\u{e9}", size: 0)
    let signed = h.enumerated().reduce(0) { $0 + Int(Int8(bitPattern: HeaderField.checksum.contains($1.offset) ? 0x20 : $1.element)) }
    var digits = Array(String(signed, radix: 8).utf8)
    digits = [UInt8](repeating: 0x30, count: 6 - digits.count) + digits
    for i in 0..<6 { h[148 + i] = digits[i] }
    let read = try readAll(h + TarWriter.endOfArchive)
    #expect(read.count == 1)
}

@Test func truncatedHeader() throws {
    let e = try #require(readError(Array(good.prefix(300))))
    #expect(e.message == "truncated header")
    #expect(e.offset == 300)
    let e2 = try #require(readError(Array(good.prefix(1536 + 100))))
    #expect(e2.message == "truncated header")
}

@Test func truncatedData() throws {
    let e = try #require(readError(Array(good.prefix(512 + 700))))
    #expect(e.message == "truncated data")
    #expect(e.entry == "file")
    #expect(e.offset == 1212)
    // Missing padding is truncation too.
    #expect(readError(Array(good.prefix(512 + 1000)))?.message == "truncated data")
}

@Test func endOfArchiveVariants() throws {
    // Stream ending on a block boundary without the marker; one zero block; partial second.
    #expect(try readAll(Array(good.prefix(1536))).count == 1)
    #expect(try readAll(Array(good.prefix(2048))).count == 1)
    #expect(try readAll(Array(good.prefix(2048 + 10))).count == 1)
    // A zero block followed by a header is not an end marker.
    let e = try #require(readError(Array(good.prefix(1536)) + [UInt8](repeating: 0, count: 512) + rawHeader(name: "late")))
    #expect(e.offset == 2048)
}

@Test func negativeBase256() throws {
    let h = rawHeader(name: "neg") { b in writeBase256(-1, into: &b, HeaderField.size) }
    let e = try #require(readError(h + TarWriter.endOfArchive))
    #expect(e.message == "bad size field")
    #expect(e.entry == "neg")
    let h2 = rawHeader(name: "neguid") { b in writeBase256(-7, into: &b, HeaderField.uid) }
    #expect(readError(h2 + TarWriter.endOfArchive)?.message == "bad uid field")
    // Negative mtime is meaningful (before 1970) and accepted.
    let h3 = rawHeader(name: "old") { b in writeBase256(-100, into: &b, HeaderField.mtime) }
    #expect(try readAll(h3).first?.0.mtimeSeconds == -100)
}

@Test func badOctal() throws {
    let h = rawHeader(name: "bad") { b in writeString(bytes("12z"), into: &b, HeaderField.mode) }
    #expect(readError(h)?.message == "bad mode field")
}

@Test func paxRecordWrongLength() throws {
    for data in ["30 path=abc\n", "5 path=abc\n", "11 path=abc", "x path=abc\n", "12 pathabc\n\n", "6 =ab\n",
                 "99999999999999999999999 a=b\n"] {
        let e = try #require(readError(paxHeader(bytes(data)) + rawHeader(name: "f")), "\(data)")
        #expect(e.offset == 0)
    }
    // Trailing NUL padding inside the declared size is tolerated.
    let ok = paxHeader(bytes("12 path=abc\n") + [0, 0, 0]) + rawHeader(name: "f")
    #expect(try readAll(ok).first?.0.path == bytes("abc"))
}

@Test func paxSizeOverflow() throws {
    let e = try #require(readError(paxHeader(paxData([("size", bytes("99999999999999999999999"))])) + rawHeader(name: "f")))
    #expect(e.message.contains("size"))
    #expect(e.entry == "f")
    let e2 = try #require(readError(paxHeader(paxData([("size", bytes("18446744073709551615"))])) + rawHeader(name: "f")))
    #expect(e2.message.contains("overflow"))
    #expect(readError(paxHeader(paxData([("size", bytes("-1"))])) + rawHeader(name: "f")) != nil)
}

@Test func bigIdsRejected() throws {
    let e = try #require(readError(paxHeader(paxData([("uid", bytes("4294967296"))])) + rawHeader(name: "who")))
    #expect(e.message.contains("uid"))
    #expect(e.entry == "who")
    let h = rawHeader(name: "gid") { b in writeBase256(1 << 40, into: &b, HeaderField.gid) }
    #expect(readError(h)?.message.contains("gid") == true)
}

@Test func nulInPath() throws {
    let e = try #require(readError(paxHeader(paxData([("path", [0x61, 0, 0x62])])) + rawHeader(name: "f")))
    #expect(e.message == "path contains NUL")
    let long = rawHeader(name: "././@LongLink", type: "L", size: 4, magic: .gnu) + padded([0x61, 0, 0x62, 0])
    #expect(readError(long + rawHeader(name: "f", magic: .gnu))?.message.contains("NUL") == true)
    #expect(readError(paxHeader(paxData([("linkpath", [0x61, 0])])) + rawHeader(name: "l", type: "2")) != nil)
}

@Test func sparseMapValidation() throws {
    func sparse(_ map: String, size: String, stored: UInt64) -> [UInt8] {
        paxHeader(paxData([("GNU.sparse.map", bytes(map)), ("GNU.sparse.size", bytes(size)), ("GNU.sparse.name", bytes("s"))]))
            + rawHeader(name: "GNUSparseFile.1/s", size: stored) + padded([UInt8](repeating: 1, count: Int(stored)))
    }
    // A valid one first.
    let ok = try readAll(sparse("0,10,100,20", size: "200", stored: 30))
    #expect(ok.first?.0.sparseMap == [SparseSegment(offset: 0, length: 10), SparseSegment(offset: 100, length: 20)])
    #expect(ok.first?.0.size == 200)
    #expect(ok.first?.0.storedSize == 30)
    for (map, size, stored) in [("0,10,195,20", "200", UInt64(30)),   // beyond real size
                                ("100,20,0,10", "200", 30),             // unsorted
                                ("0,50,40,10", "200", 60),              // overlapping
                                ("0,10", "200", 30),                    // total != stored
                                ("0,10,", "200", 10),                   // malformed
                                ("18446744073709551615,10", "200", 10)] {
        let e = try #require(readError(sparse(map, size: size, stored: stored)), "\(map)")
        #expect(e.entry == "s")
    }
    // PAX 1.0 with a map claiming more segments than the data can hold.
    let h = paxHeader(paxData([("GNU.sparse.major", bytes("1")), ("GNU.sparse.minor", bytes("0")),
                               ("GNU.sparse.name", bytes("s")), ("GNU.sparse.realsize", bytes("100"))]))
    let mapBlock = padded(bytes("99999\n0\n10\n"))
    #expect(readError(h + rawHeader(name: "s", size: 1024) + mapBlock + padded([1])) != nil)
    // ... and an unterminated map.
    #expect(readError(h + rawHeader(name: "s", size: 512) + [UInt8](repeating: 0x31, count: 512)) != nil)
    // Old GNU header whose map points outside the real size.
    let old = rawHeader(name: "old", type: "S", size: 10, magic: .gnu) { b in
        writeOctal(5, into: &b, 386..<398); writeOctal(10, into: &b, 398..<410)
        writeOctal(8, into: &b, HeaderField.gnuRealSize)
    }
    #expect(readError(old + padded([UInt8](repeating: 1, count: 10)))?.message.contains("beyond") == true)
    // Unsupported PAX sparse version.
    let v2 = paxHeader(paxData([("GNU.sparse.major", bytes("2")), ("GNU.sparse.minor", bytes("0"))])) + rawHeader(name: "s")
    #expect(readError(v2)?.message.contains("unsupported") == true)
}

@Test func multiVolumeUnsupported() throws {
    let e = try #require(readError(rawHeader(name: "part", type: "M", size: 10, magic: .gnu)))
    #expect(e.message.contains("unsupported"))
    #expect(e.entry == "part")
}

@Test func typeFlags() throws {
    let archive = rawHeader(name: "label", type: "V", magic: .gnu)
        + rawHeader(name: "contig", type: "7", size: 3) + padded(bytes("abc"))
        + rawHeader(name: "weird", type: "Z", size: 2) + padded(bytes("zz"))
        + rawHeader(name: "dump", type: "D", size: 5, magic: .gnu) + padded(bytes("Yabc\0"))
        + rawHeader(name: "old/", type: "\0", magic: .v7)
        + rawHeader(name: "v7dir/", type: "0", magic: .v7)
        + rawHeader(name: "dirwithsize", type: "5", size: 100)   // header-only: size ignored
        + rawHeader(name: "a", type: "0")
        + TarWriter.endOfArchive
    let read = try readAll(archive)
    #expect(read.map(\.0.pathString) == ["contig", "weird", "dump", "old/", "v7dir/", "dirwithsize", "a"])
    #expect(read.map(\.0.type) == [.regular, .regular, .directory, .directory, .directory, .directory, .regular])
    #expect(read[0].1 == bytes("abc"))
    #expect(read[1].1 == bytes("zz"))
    #expect(read[2].0.size == 0)
    #expect(read[0].0.headerOffset == 512)   // the volume label is not part of the entry
}

@Test func globalHeaders() throws {
    let archive = paxHeader(paxData([("uname", bytes("g")), ("mtime", bytes("5.25")),
                                     ("SCHILY.xattr.user.g", bytes("1"))]), type: "g")
        + rawHeader(name: "one")
        + paxHeader(paxData([("uname", bytes("local"))])) + rawHeader(name: "two")
        + paxHeader(paxData([("uname", bytes("g2")), ("mtime", bytes(""))]), type: "g")
        + rawHeader(name: "three")
        + TarWriter.endOfArchive
    let read = try readAll(archive).map(\.0)
    #expect(read.map(\.uname) == ["g", "local", "g2"])
    #expect(read.map(\.mtimeNanoseconds) == [250_000_000, 250_000_000, 0])
    #expect(read[0].headerOffset == 1024)
    #expect(read[1].headerOffset == 1536)    // includes its own 'x' header
    #expect(read[2].xattrs == [TarXattr(name: "user.g", value: bytes("1"))])
}

@Test func libarchiveXattrs() throws {
    let archive = paxHeader(paxData([("LIBARCHIVE.xattr.user.a%3Db", bytes("AAEC/w")),
                                     ("SCHILY.xattr.user.x", [0, 1]),
                                     ("LIBARCHIVE.xattr.user.x", bytes("aGk="))])) + rawHeader(name: "f")
    let e = try #require(try readAll(archive).first?.0)
    #expect(e.xattrs == [TarXattr(name: "user.a=b", value: [0, 1, 2, 0xff]), TarXattr(name: "user.x", value: bytes("hi"))])
    #expect(readError(paxHeader(paxData([("LIBARCHIVE.xattr.user.x", bytes("!!"))])) + rawHeader(name: "f")) != nil)
}

@Test func extensionHeaderWithoutEntry() throws {
    #expect(readError(paxHeader(paxData([("path", bytes("p"))])))?.message.contains("truncated") == true)
    #expect(readError(paxHeader(paxData([("path", bytes("p"))])) + TarWriter.endOfArchive) != nil)
    let tooBig = rawHeader(name: "x", type: "x", size: 1 << 40)
    #expect(readError(tooBig)?.message.contains("too large") == true)
}

/// Random corruption of valid archives (with and without fixed checksums) must only ever
/// produce entries or TarErrors.
@Test func mutationsNeverCrash() throws {
    var rng = SplitMix(seed: 0x5eed)
    let bases: [[UInt8]] = try [TarWriter.Format.pax, .gnu].map { format in
        try TarWriter.archive([
            (TarEntry(path: bytes(String(repeating: "n", count: 120)), type: .regular, uid: 3_000_000, size: 700,
                      mtimeNanoseconds: 5, xattrs: format == .pax ? [TarXattr(name: "user.a", value: [1, 2])] : []),
             [UInt8](repeating: 3, count: 700)),
            (TarEntry(path: bytes("l"), type: .symlink, linkTarget: bytes(String(repeating: "t", count: 200))), []),
        ], format: format)
    } + [sparseSample()]
    for iteration in 0..<3000 {
        var b = bases[iteration % bases.count]
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            let i = Int(rng.next() % UInt64(b.count))
            b[i] = UInt8(truncatingIfNeeded: rng.next())
        }
        if rng.next() % 2 == 0 {
            // Fix every header-looking block's checksum so corruption reaches the field parsers.
            for blockStart in stride(from: 0, to: b.count, by: 512) where b[blockStart + 257..<blockStart + 262] == ArraySlice(bytes("ustar")) {
                var block = Array(b[blockStart..<blockStart + 512])
                writeChecksum(into: &block)
                b.replaceSubrange(blockStart..<blockStart + 512, with: block)
            }
        }
        if rng.next() % 4 == 0 { b = Array(b.prefix(Int(rng.next() % UInt64(b.count)))) }
        _ = readError(b)
        _ = readErrorReadingData(b, &rng)
    }
}

/// Like `readError`, but also reads each entry's data through `readData`: all of it, part of
/// it or none (then `next` skips the rest), in odd buffer sizes. Corruption must show as a
/// TarError there too, and an entry never gives more bytes than its storedSize, nor (read to
/// the end without an error) fewer.
private func readErrorReadingData(_ archive: [UInt8], _ rng: inout SplitMix) -> TarError? {
    let reader = TarReader(source: MemoryTarSource(archive))
    do {
        while let entry = try reader.next() {
            let how = rng.next() % 3   // 0: all, 1: about half, 2: none
            var chunk = [UInt8](repeating: 0, count: 1 + Int(rng.next() % 1500))
            var got: UInt64 = 0
            while how != 2 {
                let n = try chunk.withUnsafeMutableBytes { try reader.readData(into: $0) }
                #expect(n >= 0 && n <= chunk.count)
                if n <= 0 { break }
                got += UInt64(n)
                if how == 1 && got >= entry.storedSize / 2 { break }
            }
            #expect(got <= entry.storedSize, "\(entry.pathString): \(got) bytes of \(entry.storedSize)")
            if how == 0 { #expect(got == entry.storedSize, "\(entry.pathString): \(got) bytes of \(entry.storedSize)") }
        }
        return nil
    } catch let e as TarError {
        return e
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

private func sparseSample() -> [UInt8] {
    let h = paxHeader(paxData([("GNU.sparse.major", bytes("1")), ("GNU.sparse.minor", bytes("0")),
                               ("GNU.sparse.name", bytes("s")), ("GNU.sparse.realsize", bytes("3000"))]))
    return h + rawHeader(name: "GNUSparseFile.0/s", size: 512 + 20) + padded(bytes("2\n0\n10\n2000\n10\n"))
        + padded([UInt8](repeating: 9, count: 20)) + TarWriter.endOfArchive
}

@Test func paxSparse10() throws {
    let read = try readAll(sparseSample())
    let e = try #require(read.first?.0)
    #expect(e.path == bytes("s"))
    #expect(e.size == 3000)
    #expect(e.storedSize == 20)
    #expect(e.dataOffset == 1024 + 512 + 512)
    #expect(e.sparseMap == [SparseSegment(offset: 0, length: 10), SparseSegment(offset: 2000, length: 10)])
    #expect(read.first?.1 == [UInt8](repeating: 9, count: 20))
}

