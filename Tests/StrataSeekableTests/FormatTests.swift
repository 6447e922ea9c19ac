#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing
import StrataTestSupport
@testable import StrataSeekable

@Suite struct EStargzFormatTests {
    @Test func footerHasTheSpecLayout() {
        let bytes = EStargzFooter(tocOffset: 0x1234abcd).encoded()
        #expect(bytes.count == 51)
        #expect(Array(bytes[0..<10]) == [0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff])
        #expect(Array(bytes[10..<16]) == [26, 0, 0x53, 0x47, 22, 0])
        #expect(String(decoding: bytes[16..<38], as: UTF8.self) == "000000001234abcdSTARGZ")
        #expect(Array(bytes[38...]) == [0x01, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test(arguments: [UInt64(0), 1, 0x7fff_ffff, 0x1234_5678_9abc, UInt64(Int64.max)])
    func footerRoundTrips(offset: UInt64) throws {
        for kind in [EStargzFooter.Kind.estargz, .legacy] {
            let footer = EStargzFooter(tocOffset: offset, kind: kind)
            let bytes = footer.encoded()
            #expect(bytes.count == footer.encodedSize)
            // Readers pass the last 51 bytes of the blob: payload bytes before a 47-byte footer.
            let tail = Array([UInt8](repeating: 0x55, count: 64) + bytes).suffix(EStargzFooter.maxSize)
            #expect(try EStargzFooter.decode(tail: Array(tail)) == footer)
        }
    }

    @Test func legacyFooterHasNoSubfieldHeader() {
        let bytes = EStargzFooter(tocOffset: 0xff, kind: .legacy).encoded()
        #expect(bytes.count == 47)
        #expect(Array(bytes[10..<12]) == [22, 0])
        #expect(String(decoding: bytes[12..<34], as: UTF8.self) == "00000000000000ffSTARGZ")
    }

    @Test func footerIsAnEmptyGzipMember() throws {
        let dir = try TempDirectory()
        defer { withExtendedLifetime(dir) {} }
        let path = dir.child("f.gz")
        let bytes = EStargzFooter(tocOffset: 42).encoded() + EStargzFooter(tocOffset: 42, kind: .legacy).encoded()
        #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        // gzip checks each member's CRC and size: both footers are complete, empty members.
        let result = try Command.check("/bin/sh", ["-c", "gzip -dc < '\(path)' | wc -c"])
        #expect(result.stdoutString.split(separator: "\n").first == "0")
    }

    @Test func badFootersAreRefused() {
        var bytes = EStargzFooter(tocOffset: 7).encoded()
        bytes[33] = 0x58                                           // "SXARGZ"
        #expect(throws: SeekableError.self) { try EStargzFooter.decode(tail: bytes) }
        var hex = EStargzFooter(tocOffset: 7).encoded()
        hex[20] = 0x67                                              // 'g' is no hex digit
        #expect(throws: SeekableError.self) { try EStargzFooter.decode(tail: hex) }
        #expect(throws: SeekableError.self) { try EStargzFooter.decode(tail: [UInt8](repeating: 0, count: 51)) }
        #expect(throws: SeekableError.self) { try EStargzFooter.decode(tail: [0x1f, 0x8b]) }
        let huge = Array("ffffffffffffffffSTARGZ".utf8)
        var tooBig = EStargzFooter(tocOffset: 0).encoded()
        tooBig.replaceSubrange(16..<38, with: huge)
        #expect(throws: SeekableError.self) { try EStargzFooter.decode(tail: tooBig) }
    }

    @Test func tocJSONDecodesEveryField() throws {
        let json = """
        {"version":1,"entries":[
         {"name":"bin/","type":"dir","modtime":"2021-05-06T07:08:09Z","mode":2147484141,"uid":1,"gid":2,
          "userName":"u","groupName":"g","xattrs":{"user.a":"aGk="}},
         {"name":"bin/big","type":"reg","size":5000000,"mode":493,"offset":123,"digest":"sha256:aa",
          "chunkSize":4194304,"chunkDigest":"sha256:bb"},
         {"name":"bin/big","type":"chunk","offset":999,"innerOffset":5,"chunkOffset":4194304,"chunkDigest":"sha256:cc"},
         {"name":"dev/null","type":"char","devMajor":1,"devMinor":3},
         {"name":"l","type":"symlink","linkName":"bin/big"}]}
        """
        let toc = try JSONDecoder().decode(EStargzTOC.self, from: Data(json.utf8))
        #expect(toc.version == 1 && toc.entries.count == 5)
        let dir = toc.entries[0]
        #expect(dir.entryType == .dir && dir.uid == 1 && dir.gid == 2 && dir.userName == "u" && dir.groupName == "g")
        #expect(try dir.decodedXattrs().map(\.value) == [Array("hi".utf8)])
        #expect(RFC3339.parse(try #require(dir.modtime))?.seconds == 1_620_284_889)
        #expect(toc.entries[1].chunkSize == 4_194_304 && toc.entries[1].offset == 123)
        #expect(toc.entries[2].innerOffset == 5 && toc.entries[2].chunkOffset == 4_194_304)
        #expect(toc.entries[3].devMajor == 1 && toc.entries[3].devMinor == 3)
        #expect(toc.entries[4].linkName == "bin/big")
        let again = try JSONDecoder().decode(EStargzTOC.self, from: JSONEncoder().encode(toc))
        #expect(again == toc)
    }

    @Test func nilFieldsAreLeftOut() throws {
        let entry = EStargzTOCEntry(name: "a", type: .dir)
        let text = String(decoding: try JSONEncoder().encode(entry), as: UTF8.self)
        #expect(!text.contains("size") && !text.contains("null"))
    }

    @Test func badXattrIsNamed() {
        var entry = EStargzTOCEntry(name: "etc/x", type: .reg)
        entry.xattrs = ["user.k": "!!"]
        #expect(throws: SeekableError("TOC entry 'etc/x': xattr 'user.k' is not base64")) { try entry.decodedXattrs() }
    }
}

@Suite struct ZstdChunkedFormatTests {
    @Test func legacyFooterHasTheLayoutDebianReads() {
        let footer = ZstdChunkedFooter(dialect: .legacy, toc: ZstdChunkedPosition(offset: 0x0102, length: 3, uncompressedLength: 4))
        let bytes = footer.encoded()
        #expect(bytes.count == 40)
        #expect(Array(bytes[0..<8]) == [2, 1, 0, 0, 0, 0, 0, 0])
        #expect(bytes[8] == 3 && bytes[16] == 4 && bytes[24] == 1)
        #expect(Array(bytes[32...]) == [0x47, 0x6e, 0x55, 0x6c, 0x49, 0x6e, 0x55, 0x78])
        let frame = footer.encodedFrame()
        #expect(Array(frame[0..<8]) == [0x50, 0x2a, 0x4d, 0x18, 40, 0, 0, 0])
    }

    @Test func currentFooterHasSixtyFourBytes() {
        let footer = ZstdChunkedFooter(dialect: .current, toc: ZstdChunkedPosition(offset: 10, length: 20, uncompressedLength: 30),
                                       tarSplit: ZstdChunkedPosition(offset: 40, length: 50, uncompressedLength: 60, type: nil))
        let bytes = footer.encoded()
        #expect(bytes.count == 64)
        #expect(bytes[32] == 40 && bytes[40] == 50 && bytes[48] == 60)
        #expect(Array(bytes[56...]) == Array("GNUlInUx".utf8))
    }

    @Test func footersRoundTrip() throws {
        let toc = ZstdChunkedPosition(offset: 123_456_789_012, length: 77, uncompressedLength: 999)
        let cases = [
            ZstdChunkedFooter(dialect: .legacy, toc: toc),
            ZstdChunkedFooter(dialect: .current, toc: toc),
            ZstdChunkedFooter(dialect: .current, toc: toc,
                              tarSplit: ZstdChunkedPosition(offset: 5, length: 6, uncompressedLength: 7, type: nil)),
        ]
        for footer in cases {
            // With its frame header and payload before it, as a reader's 72-byte tail read returns it.
            let blob = [UInt8](repeating: 0xaa, count: 100) + footer.encodedFrame()
            #expect(try ZstdChunkedFooter.decode(tail: Array(blob.suffix(ZstdChunked.maxFooterFrameSize))) == footer)
            #expect(try ZstdChunkedFooter.decode(tail: footer.encoded()) == footer)
        }
    }

    @Test func badFootersAreRefused() {
        let good = ZstdChunkedFooter(dialect: .legacy, toc: ZstdChunkedPosition(offset: 1, length: 2, uncompressedLength: 3))
        var noMagic = good.encoded(); noMagic[39] = 0
        #expect(throws: SeekableError.self) { try ZstdChunkedFooter.decode(tail: noMagic) }
        var badType = good.encoded(); badType[24] = 2
        #expect(throws: SeekableError.self) { try ZstdChunkedFooter.decode(tail: badType) }
        var badFrame = good.encodedFrame(); badFrame[4] = 56        // a frame that is not 40 bytes long
        #expect(throws: SeekableError.self) { try ZstdChunkedFooter.decode(tail: badFrame) }
        #expect(throws: SeekableError.self) { try ZstdChunkedFooter.decode(tail: Array("GNUlInUx".utf8)) }
    }

    @Test func positionAnnotation() {
        let p = ZstdChunkedPosition(annotation: "1234:56:789:1")
        #expect(p == ZstdChunkedPosition(offset: 1234, length: 56, uncompressedLength: 789, type: 1))
        #expect(p?.annotation == "1234:56:789:1")
        #expect(ZstdChunkedPosition(annotation: "1:2:3")?.type == nil)
        for bad in ["", "1:2", "1:2:3:4:5", "a:2:3:1", "-1:2:3:1", "1::3:1", " 1:2:3:1", "99999999999999999999:1:1:1"] {
            #expect(ZstdChunkedPosition(annotation: bad) == nil, "\(bad)")
        }
    }

    @Test func annotationNamesOfBothDialects() {
        #expect(ZstdChunked.Dialect.legacy.manifestChecksumKey == "io.containers.zstd-chunked.manifest-checksum")
        #expect(ZstdChunked.Dialect.legacy.manifestPositionKey == "io.containers.zstd-chunked.manifest-position")
        #expect(ZstdChunked.Dialect.current.manifestChecksumKey == "io.github.containers.zstd-chunked.manifest-checksum")
        #expect(ZstdChunked.Dialect.current.manifestPositionKey == "io.github.containers.zstd-chunked.manifest-position")
        #expect(ZstdChunked.Dialect.current.tarSplitPositionKey == "io.github.containers.zstd-chunked.tarsplit-position")
        #expect(ZstdChunked.Dialect.legacy.tarSplitPositionKey == nil)
    }

    @Test func tocJSONAsContainersStorageWritesIt() throws {
        let json = """
        {"version":1,"entries":[
         {"type":"dir","name":"etc/","mode":493,"uid":0,"gid":0,"modtime":"2022-10-11T12:13:14.5+02:00",
          "accesstime":"0001-01-01T00:00:00Z","changetime":"0001-01-01T00:00:00Z","devMajor":0,"devMinor":0},
         {"type":"reg","name":"etc/big","mode":420,"size":100000,"modtime":"2022-10-11T10:13:14Z",
          "xattrs":{"security.capability":"AQIDBA=="},"digest":"sha256:dd","offset":200,"endOffset":900,
          "chunkSize":60000,"chunkDigest":"sha256:c1"},
         {"type":"chunk","name":"etc/big","offset":500,"chunkSize":40000,"chunkOffset":60000,"chunkDigest":"sha256:c2","chunkType":"zeros"}],
         "tarSplitDigest":"sha256:ee"}
        """
        let toc = try JSONDecoder().decode(ZstdChunkedTOC.self, from: Data(json.utf8))
        #expect(toc.tarSplitDigest == "sha256:ee" && toc.entries.count == 3)
        let dir = toc.entries[0]
        #expect(pair(dir.modtime) == [1_665_483_194, 500_000_000])
        #expect(RFC3339.parse(try #require(toc.entries[1].modtime))?.seconds == 1_665_483_194)
        #expect(try toc.entries[1].decodedXattrs().first?.value == [1, 2, 3, 4])
        #expect(toc.entries[1].endOffset == 900 && toc.entries[2].chunkType == ZstdChunkedTOCEntry.chunkTypeZeros)
        #expect(try JSONDecoder().decode(ZstdChunkedTOC.self, from: JSONEncoder().encode(toc)) == toc)
    }
}

/// A parsed time as [seconds, nanoseconds], comparable in #expect.
func pair(_ text: String?) -> [Int64]? {
    text.flatMap(RFC3339.parse).map { [$0.seconds, Int64($0.nanoseconds)] }
}

@Suite struct RFC3339Tests {
    @Test func parsesAndFormats() throws {
        #expect(pair("1970-01-01T00:00:00Z") == [0, 0])
        #expect(pair("2000-02-29T23:59:59.123456789Z") == [951_868_799, 123_456_789])
        #expect(pair("1969-12-31T23:59:59Z") == [-1, 0])
        #expect(RFC3339.parse("0001-01-01T00:00:00Z")?.seconds == -62_135_596_800)
        for bad in ["", "2000-13-01T00:00:00Z", "2000-01-01T00:00:00", "2000-01-01T00:00:00.Z", "2000-01-01T00:00:00Zjunk"] {
            #expect(RFC3339.parse(bad) == nil, "\(bad)")
        }
        for (s, n) in [(Int64(0), UInt32(0)), (1_665_483_194, 500_000_000), (-1, 0), (4_102_444_800, 1)] {
            let text = RFC3339.format(seconds: s, nanoseconds: n)
            #expect(pair(text) == [s, Int64(n)], "\(text)")
        }
        #expect(RFC3339.format(seconds: 1_620_284_889) == "2021-05-06T07:08:09Z")
        #expect(RFC3339.format(seconds: 0, nanoseconds: 500_000_000) == "1970-01-01T00:00:00.5Z")
    }
}
