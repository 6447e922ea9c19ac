import Testing
import Glibc
import StrataCodec
import StrataHash
import StrataSystem
@testable import StrataIndex

/// A fixed index exercising every record kind: entries of each kind, xattrs, sparse maps,
/// blob checkpoints with windows, and copy frames that replace the checkpoints they cover.
func fixedIndex() -> [UInt8] {
    var w = LayerIndexWriter()
    let kinds: [IndexEntryKind] = [.directory, .regular, .hardlink, .symlink, .characterDevice, .blockDevice, .fifo, .whiteout, .opaque]
    for (i, kind) in kinds.enumerated() {
        let n = UInt32(i)
        w.append(IndexEntryInput(
            path: Array("dir/entry-\(i)".utf8), linkTarget: kind == .symlink || kind == .hardlink ? Array("dir/entry-1".utf8) : [],
            kind: kind, mode: 0o640 + n, uid: 1000 + n, gid: 2000 + n, size: 4096 * UInt64(i + 1), dataOffset: 512 * UInt64(i + 3),
            storedSize: i == 1 ? 1024 : 0, mtimeSeconds: 1_700_000_000 + Int64(i), mtimeNanoseconds: 123 + n,
            devMajor: 8 + n, devMinor: 16 + n,
            xattrs: i % 2 == 0 ? [(Array("user.k\(i)".utf8), Array("value-\(i)".utf8)), (Array("security.x".utf8), [])] : [],
            sparse: i == 1 ? [(offset: 0, length: 512), (offset: 2048, length: 512)] : nil))
    }
    let checkpoints = (0..<6).map { i in
        Checkpoint(compressedOffset: UInt64(i) * 1000 + 10, uncompressedOffset: UInt64(i) << 20, bits: UInt8(i),
                   window: i == 0 ? [] : (0..<(i * 700)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) })
    }
    let copy = RecodedCopy(frames: [
        RecodedCopy.Frame(uncompressedOffset: 2 << 20, uncompressedLength: 1 << 20, copyOffset: 0, compressedSize: 300),
        RecodedCopy.Frame(uncompressedOffset: 3 << 20, uncompressedLength: 1 << 20, copyOffset: 300, compressedSize: 200),
    ])
    return w.serialize(compression: .zstd, blobSize: 6000, uncompressedSize: 6 << 20,
                       digest: (0..<32).map { UInt8($0 * 7) }, checkpoints: checkpoints, copy: copy)
}

@Suite struct IndexFormatTests {
    /// The bytes of a fixed index, recorded before the format was described by named fields:
    /// a change that moves a field changes the format and must change the version.
    @Test func fixedIndexKeepsItsBytes() {
        let bytes = fixedIndex()
        #expect(SHA256Hasher.hex(of: bytes) == "07b9fa70347d6de69473f7e3a146996c7ad0f7a5bdcc77596783ceb591009b52")
    }
}
