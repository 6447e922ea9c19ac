import Testing
@testable import StrataRemote
import StrataSystem

/// The TOC reads of a registry mount: footer and a small TOC in one request, a large TOC with
/// one more request for only what the first did not bring, bytes always the blob's.
@Suite struct TailReaderTests {
    final class Recorder: @unchecked Sendable {
        let blob: [UInt8]
        let requests = Locked<[Range<UInt64>]>([])
        var truncate = false
        init(size: Int) { blob = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) } }
        func fetch(_ r: Range<UInt64>) throws -> [UInt8] {
            requests.withLock { $0.append(r) }
            let bytes = Array(blob[Int(r.lowerBound)..<Int(r.upperBound)])
            return truncate ? Array(bytes.dropLast()) : bytes
        }
    }

    @Test func footerAndSmallTOCInOneRequest() throws {
        let blob = Recorder(size: 8 << 20)
        let size = UInt64(blob.blob.count)
        let reader = TailReader(size: size, fetch: blob.fetch)
        #expect(try reader.read((size - 51)..<size) == Array(blob.blob[(blob.blob.count - 51)...]))
        let toc = (size - 100_000)..<(size - 51)
        #expect(try reader.read(toc) == Array(blob.blob[Int(toc.lowerBound)..<Int(toc.upperBound)]))
        #expect(blob.requests.withLock { $0 } == [(size - TailReader.tailBytes)..<size])
    }

    @Test func largeTOCFetchesOnlyWhatIsMissing() throws {
        let blob = Recorder(size: 8 << 20)
        let size = UInt64(blob.blob.count)
        let reader = TailReader(size: size, fetch: blob.fetch)
        _ = try reader.read((size - 51)..<size)
        let toc = (size - 900_000)..<(size - 51)
        #expect(try reader.read(toc) == Array(blob.blob[Int(toc.lowerBound)..<Int(toc.upperBound)]))
        #expect(blob.requests.withLock { $0 } == [(size - TailReader.tailBytes)..<size, toc.lowerBound..<(size - TailReader.tailBytes)])
    }

    @Test func blobSmallerThanTheTail() throws {
        let blob = Recorder(size: 4000)
        let reader = TailReader(size: 4000, fetch: blob.fetch)
        #expect(try reader.read(3949..<4000) == Array(blob.blob[3949...]))
        #expect(try reader.read(10..<3949) == Array(blob.blob[10..<3949]))
        #expect(blob.requests.withLock { $0 } == [0..<4000])
    }

    @Test func aSmallLayerFetchesASixteenthAtMost() throws {
        let blob = Recorder(size: 320_000)
        let reader = TailReader(size: 320_000, fetch: blob.fetch)
        _ = try reader.read(319_949..<320_000)
        #expect(blob.requests.withLock { $0 } == [300_000..<320_000])
    }

    @Test func aShortAnswerIsAnError() throws {
        let blob = Recorder(size: 1 << 20)
        blob.truncate = true
        let reader = TailReader(size: 1 << 20, fetch: blob.fetch)
        #expect(throws: (any Error).self) { try reader.read(((1 << 20) - 51)..<(1 << 20)) }
    }
}
