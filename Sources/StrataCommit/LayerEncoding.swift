#if canImport(Glibc)
import Glibc
#endif
import StrataCodec
import StrataOCI
import StrataSeekable
import StrataSystem
import StrataTar

/// How a layer is written: a plain compressed tar, or a seekable format with its TOC.
/// Names as on the command line: gzip, zstd, none, estargz, zstd:chunked.
public enum LayerEncoding: Sendable, Equatable, CustomStringConvertible {
    case plain(LayerCompression)
    case seekable(SeekableLayerFormat)

    public init?(name: String) {
        if let c = LayerCompression(rawValue: name) { self = .plain(c) }
        else if let f = SeekableLayerFormat(rawValue: name) { self = .seekable(f) }
        else { return nil }
    }

    public var description: String {
        switch self {
        case .plain(let c): c.rawValue
        case .seekable(let f): f.rawValue
        }
    }

    var mediaType: String {
        switch self {
        case .plain(let c): ImageCommitter.mediaType(c)
        case .seekable(let f): f.mediaType
        }
    }

    /// Writes the whole uncompressed tar read from `tar` into `output` in this encoding.
    /// Returns the diff_id and the annotations the layer descriptor needs.
    func encode(tar: TarSourceFile, into output: FileDescriptor) throws -> (diffID: Digest, annotations: [String: String]) {
        let (diffID, annotations, _) = try encode(tar: tar, into: output, prioritized: nil)
        return (diffID, annotations)
    }

    /// As above; `prioritized` (seekable formats only) puts those files first.
    func encode(tar: TarSourceFile, into output: FileDescriptor, prioritized: Prioritization?) throws
        -> (diffID: Digest, annotations: [String: String], prioritization: PrioritizationResult?) {
        switch self {
        case .plain(let compression):
            let compressor = try CompressingWriter(compression: compression, file: output, level: nil,
                                                   zstdFrameSize: compression == .zstd ? 4 << 20 : nil)
            let stream = TarStream(compressor: compressor)
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try tar.source.read(into: $0) }
                if n == 0 { break }
                try buffer.withUnsafeBytes { try stream.write(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            return (Digest(sha256Hex: try stream.finish()), [:], nil)
        case .seekable(let format):
            let result: SeekableLayerResult
            switch format {
            case .estargz: result = try EStargzWriter().write(tar: tar.source, to: output, prioritized: prioritized)
            case .zstdChunked: result = try ZstdChunkedWriter().write(tar: tar.source, to: output, prioritized: prioritized)
            }
            return (Digest(sha256Hex: result.diffIDHex), result.annotations, result.prioritization)
        }
    }
}

/// A layer blob opened for reading its uncompressed tar.
struct TarSourceFile {
    let file: FileDescriptor
    let source: TarSource

    init(file: FileDescriptor, source: TarSource) { self.file = file; self.source = source }

    init(location: BlobLocation, compression: LayerCompression) throws {
        do { file = try FileDescriptor.open(location.path, O_RDONLY) } catch {
            throw CommitError("\(location.path): cannot open the layer blob", wrapping: error)
        }
        source = DecodedTarSource(compression: compression,
                                  blob: StrataCodec.BlobFile(file, base: location.offset, size: location.size),
                                  size: location.size)
    }

    init(descriptor: FileDescriptor, size: UInt64) {
        file = descriptor
        source = DecodedTarSource(compression: .none, blob: StrataCodec.BlobFile(descriptor), size: size)
    }

    func close() { file.close() }
}
