import Testing
@testable import StrataTar

/// Entries every format can carry, and the extras that need PAX or GNU extensions.
private func entries(for format: TarWriter.Format) -> [(TarEntry, [UInt8])] {
    let hello = bytes("hello, world\n")
    let deep = String(repeating: "d", count: 60) + "/" + String(repeating: "e", count: 60) + "/file.txt"  // >100, splits
    var list: [(TarEntry, [UInt8])] = [
        (TarEntry(path: bytes("a.txt"), type: .regular, mode: 0o644, uid: 1000, gid: 1000, uname: "alice",
                  gname: "staff", size: UInt64(hello.count), mtimeSeconds: 1_700_000_000), hello),
        (TarEntry(path: bytes("empty"), type: .regular, mode: 0o600), []),
        (TarEntry(path: bytes("dir/"), type: .directory, mode: 0o755, mtimeSeconds: 42), []),
        (TarEntry(path: bytes(deep), type: .regular, mode: 0o4755, size: 600), [UInt8](repeating: 7, count: 600)),
        (TarEntry(path: bytes("link"), type: .symlink, mode: 0o777, linkTarget: bytes("a.txt")), []),
        (TarEntry(path: bytes("hard"), type: .hardlink, linkTarget: bytes("a.txt")), []),
        (TarEntry(path: bytes("dev/null"), type: .characterDevice, mode: 0o666, devMajor: 1, devMinor: 3), []),
        (TarEntry(path: bytes("dev/sda1"), type: .blockDevice, mode: 0o660, devMajor: 8, devMinor: 1), []),
        (TarEntry(path: bytes("fifo"), type: .fifo, mode: 0o644), []),
        (TarEntry(path: [0x66, 0xff, 0xfe, 0x2e, 0x62], type: .regular, size: 1), [0x42]),  // not UTF-8
    ]
    if format != .ustar {
        let veryLong = (0..<30).map { _ in "component" }.joined(separator: "/") + "/" + String(repeating: "n", count: 120)
        let longTarget = String(repeating: "t", count: 150) + "/" + String(repeating: "u", count: 150)
        list += [
            (TarEntry(path: bytes(veryLong), type: .regular, size: 3), bytes("abc")),
            (TarEntry(path: bytes(String(repeating: "x", count: 101)), type: .directory), []),
            (TarEntry(path: [0xc3, 0x28] + bytes(String(repeating: "/z", count: 150)), type: .regular), []),
            (TarEntry(path: bytes("longlink"), type: .symlink, linkTarget: bytes(longTarget)), []),
            (TarEntry(path: bytes("longhard"), type: .hardlink, linkTarget: bytes(veryLong)), []),
            (TarEntry(path: bytes("bigids"), type: .regular, uid: 3_000_000, gid: 4_000_000_000), []),
            (TarEntry(path: bytes("bigdev"), type: .blockDevice, devMajor: 4095, devMinor: 0xFFFFF), []),
            (TarEntry(path: bytes("future"), type: .regular, mtimeSeconds: 1 << 40), []),
            (TarEntry(path: bytes("past"), type: .regular, mtimeSeconds: -86400), []),
        ]
    }
    if format == .pax {
        list += [
            (TarEntry(path: bytes("nanos"), type: .regular, mtimeSeconds: 1_700_000_000, mtimeNanoseconds: 123_456_789), []),
            (TarEntry(path: bytes("negnanos"), type: .regular, mtimeSeconds: -2, mtimeNanoseconds: 500_000_000), []),
            (TarEntry(path: bytes("caps"), type: .regular, size: 2,
                      xattrs: [TarXattr(name: "user.foo", value: bytes("bar")),
                               TarXattr(name: "security.capability",
                                        value: [1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                               TarXattr(name: "user.empty", value: []),
                               TarXattr(name: "user.bin", value: [0, 10, 0xff, 0x3d, 0x0a])]), bytes("hi")),
            (TarEntry(path: bytes("names"), type: .regular, uname: String(repeating: "u", count: 40), gname: "grüppe"), []),
        ]
    }
    return list
}

@Test(arguments: [TarWriter.Format.pax, .gnu, .ustar])
func roundTrip(format: TarWriter.Format) throws {
    let items = entries(for: format)
    let archive = try TarWriter.archive(items, format: format)
    #expect(try TarWriter.archive(items, format: format) == archive)   // deterministic
    #expect(archive.count % 512 == 0)
    let read = try readAll(archive)
    try #require(read.count == items.count)
    var expectedHeaderOffset: UInt64 = 0
    for ((want, data), (got, gotData)) in zip(items, read) {
        #expect(got.path == want.path)
        #expect(got.type == want.type)
        #expect(got.mode == want.mode)
        #expect(got.uid == want.uid)
        #expect(got.gid == want.gid)
        #expect(got.uname == want.uname)
        #expect(got.gname == want.gname)
        #expect(got.size == (want.type == .regular ? want.size : 0))
        #expect(got.storedSize == got.size)
        #expect(got.mtimeSeconds == want.mtimeSeconds)
        #expect(got.mtimeNanoseconds == (format == .pax ? want.mtimeNanoseconds : 0))
        #expect(got.linkTarget == want.linkTarget)
        #expect(got.devMajor == want.devMajor)
        #expect(got.devMinor == want.devMinor)
        // The writer sorts records by key; the reader keeps archive order.
        #expect(got.xattrs == want.xattrs.sorted { $0.name < $1.name })
        #expect(got.sparseMap == nil)
        #expect(got.headerOffset == expectedHeaderOffset)
        // Data sits at dataOffset in the archive.
        let start = Int(got.dataOffset)
        #expect(Array(archive[start..<(start + data.count)]) == data)
        #expect(gotData == data)
        expectedHeaderOffset = got.dataOffset + got.storedSize + UInt64(TarWriter.padding(for: got.storedSize))
    }
}

@Test func ustarRejectsWhatDoesNotFit() {
    let cases: [TarEntry] = [
        TarEntry(path: bytes(String(repeating: "a", count: 101)), type: .regular),
        TarEntry(path: bytes(String(repeating: "a/", count: 130)), type: .regular),
        TarEntry(path: bytes("l"), type: .symlink, linkTarget: bytes(String(repeating: "t", count: 101))),
        TarEntry(path: bytes("u"), type: .regular, uid: 2_097_152),
        TarEntry(path: bytes("s"), type: .regular, size: 1 << 33),
        TarEntry(path: bytes("m"), type: .regular, mtimeSeconds: -1),
        TarEntry(path: bytes("x"), type: .regular, xattrs: [TarXattr(name: "user.a", value: [1])]),
    ]
    for e in cases {
        #expect(throws: TarError.self) { try TarWriter.header(for: e, format: .ustar) }
    }
    #expect(throws: TarError.self) {
        try TarWriter.header(for: TarEntry(path: bytes("x"), type: .regular, xattrs: [TarXattr(name: "user.a", value: [1])]), format: .gnu)
    }
    #expect(throws: TarError.self) { try TarWriter.header(for: TarEntry(path: [0x61, 0, 0x62], type: .regular)) }
    #expect(throws: TarError.self) { try TarWriter.archive([(TarEntry(path: bytes("a"), type: .regular, size: 2), [1])]) }
}

@Test func ustarPrefixSplit() throws {
    let path = bytes(String(repeating: "p", count: 150) + "/" + String(repeating: "n", count: 99))
    let header = try TarWriter.header(for: TarEntry(path: path, type: .regular), format: .pax)
    #expect(header.count == 512)   // no PAX record needed
    #expect(try readAll(header + TarWriter.endOfArchive).first?.0.path == path)
}

/// Sizes beyond the octal limit: the header is written without the data, so the reader
/// must report the entry and then the truncation.
@Test(arguments: [TarWriter.Format.pax, .gnu])
func hugeSize(format: TarWriter.Format) throws {
    let size: UInt64 = 10 << 30
    let header = try TarWriter.header(for: TarEntry(path: bytes("huge.img"), type: .regular, size: size), format: format)
    let reader = TarReader(source: MemoryTarSource(header + [UInt8](repeating: 1, count: 5000)))
    let entry = try #require(try reader.next())
    #expect(entry.size == size)
    #expect(entry.storedSize == size)
    #expect(entry.dataOffset == UInt64(header.count))
    do {
        _ = try reader.next()
        Issue.record("expected truncation")
    } catch let e as TarError {
        #expect(e.message == "truncated data")
        #expect(e.entry == "huge.img")
        #expect(e.offset == UInt64(header.count) + 5000)
    }
    // Errors are sticky.
    #expect(throws: TarError.self) { try reader.next() }
}

@Test func paxValues() {
    #expect(PaxValue.time(bytes("1.5"))! == (1, 500_000_000))
    #expect(PaxValue.time(bytes("-1.5"))! == (-2, 500_000_000))
    #expect(PaxValue.time(bytes("-0.000000001"))! == (-1, 999_999_999))
    #expect(PaxValue.time(bytes("12.1234567899"))! == (12, 123_456_789))
    #expect(PaxValue.time(bytes("-7"))! == (-7, 0))
    #expect(PaxValue.time(bytes("1.")) == nil)
    #expect(PaxValue.time(bytes("1e5")) == nil)
    #expect(PaxValue.time(bytes("")) == nil)
    #expect(PaxValue.formatTime(seconds: -2, nanoseconds: 500_000_000) == "-1.5")
    #expect(PaxValue.formatTime(seconds: 3, nanoseconds: 10) == "3.00000001")
    #expect(PaxRecords.encode(key: "a", value: bytes("b")) == bytes("6 a=b\n"))
    // A record whose length crosses a digit boundary.
    let r = PaxRecords.encode(key: "path", value: [UInt8](repeating: 0x61, count: 91))
    #expect(r.count == 101 && r.prefix(4) == ArraySlice(bytes("101 ")))
    #expect(LibarchiveXattr.base64Decode(bytes("aGk")) == bytes("hi"))
    #expect(LibarchiveXattr.base64Decode(bytes("aGk=")) == bytes("hi"))
    #expect(LibarchiveXattr.base64Decode(bytes("a")) == nil)
    #expect(LibarchiveXattr.percentDecode(bytes("user.a%3Db")) == bytes("user.a=b"))
    #expect(LibarchiveXattr.percentDecode(bytes("%4")) == nil)
}

@Test func numericFields() throws {
    #expect(try parseNumeric(ArraySlice(bytes("  0755 \0")), allowNegative: false) == 0o755)
    #expect(try parseNumeric(ArraySlice(bytes("\0\0\0\0")), allowNegative: false) == 0)
    #expect(throws: NumericFieldError.self) { try parseNumeric(ArraySlice(bytes("12x4")), allowNegative: false) }
    #expect(throws: NumericFieldError.self) { try parseNumeric(ArraySlice(bytes("1 2")), allowNegative: false) }
    var b = [UInt8](repeating: 0, count: 12)
    writeBase256(-5, into: &b, 0..<12)
    #expect(try parseNumeric(b[...], allowNegative: true) == -5)
    #expect(throws: NumericFieldError.self) { try parseNumeric(b[...], allowNegative: false) }
    writeBase256(1 << 62, into: &b, 0..<12)
    #expect(try parseNumeric(b[...], allowNegative: false) == 1 << 62)
    // 2^64 in a 12-byte base-256 field does not fit.
    let big: [UInt8] = [0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
    #expect(throws: NumericFieldError.self) { try parseNumeric(big[...], allowNegative: false) }
}
