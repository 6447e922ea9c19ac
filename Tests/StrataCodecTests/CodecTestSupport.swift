import Glibc
import Testing
import StrataCodec
import StrataHash
import StrataSystem

/// A file under /tmp with a unique name, removed by `remove()`.
final class TempFile {
    let path: String
    let fd: FileDescriptor

    init(_ bytes: [UInt8] = []) throws {
        path = "/tmp/strata-codec-test-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        fd = try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL, mode: 0o600)
        if !bytes.isEmpty { try fd.writeAll(bytes) }
    }

    func contents() throws -> [UInt8] { try FileIO.readAll(path) }

    func remove() {
        fd.close()
        unlink(path)
    }
}

/// Deterministic bytes: 1 MiB-ish runs alternating random (incompressible) and word text.
func mixedData(size: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var state = seed
    func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
    let words: [[UInt8]] = ["layer", "strata", "union", "whiteout", "tar", "inode", "checkpoint", "\n", "etc/", "usr/lib/",
                            "0123456789", "deflate", "zstd", " ", " ", "-"].map { Array($0.utf8) }
    var out = [UInt8](repeating: 0, count: size)
    out.withUnsafeMutableBytes { buffer in
        var i = 0
        var random = false
        while i < size {
            let run = min(size - i, Int(next() % (1 << 20)) + 4096)
            if random {
                var j = i
                while j + 8 <= i + run { buffer.storeBytes(of: next(), toByteOffset: j, as: UInt64.self); j += 8 }
                while j < i + run { buffer[j] = UInt8(truncatingIfNeeded: next()); j += 1 }
            } else {
                var j = i
                while j < i + run {
                    // Words and numbers: compressible like real text (~3x), not like a repeated pattern.
                    let r = next()
                    let word = words[Int(r % UInt64(words.count))]
                    for b in word where j < i + run { buffer[j] = b; j += 1 }
                    var number = (r >> 8) % 100_000
                    if r & 0x80 != 0 {
                        repeat {
                            if j < i + run { buffer[j] = UInt8(48 + number % 10); j += 1 }
                            number /= 10
                        } while number > 0
                    }
                }
            }
            i += run
            random.toggle()
        }
    }
    return out
}

/// Byte equality by memcmp (Array == is slow in debug builds).
func same(_ a: UnsafeRawBufferPointer, _ b: [UInt8], _ range: Range<Int>) -> Bool {
    guard a.count == range.count else { return false }
    if a.count == 0 { return true }
    return b.withUnsafeBytes { memcmp(a.baseAddress!, $0.baseAddress! + range.lowerBound, a.count) == 0 }
}

func same(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    a.withUnsafeBytes { same($0, b, 0..<b.count) }
}

struct IndexResult {
    var output: [UInt8]
    var checkpoints: [Checkpoint]
    var hashed: [UInt8]
    var hashedCount: UInt64
    var consumed: UInt64
    var produced: UInt64
}

/// Runs an IndexingDecoder over a whole file, reading with an odd buffer size.
func index(_ compression: LayerCompression, _ file: TempFile, blobSize: UInt64, spacing: UInt64 = 4 << 20,
           readSize: Int = 100_003) throws -> IndexResult {
    let hasher = SHA256Hasher()
    var hashedCount: UInt64 = 0
    let decoder = IndexingDecoder(compression: compression, file: file.fd, blobSize: blobSize, checkpointSpacing: spacing) {
        hasher.update($0)
        hashedCount += UInt64($0.count)
    }
    var output: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: readSize)
    while true {
        let n = try chunk.withUnsafeMutableBytes { try decoder.read(into: $0) }
        if n < readSize && n > 0 {
            // Only the end may be short: the next read must give 0.
            output += chunk[0..<n]
            let m = try chunk.withUnsafeMutableBytes { try decoder.read(into: $0) }
            try #require(m == 0, "short read before the end")
            break
        }
        if n == 0 { break }
        output += chunk[0..<n]
    }
    try decoder.finish()
    return IndexResult(output: output, checkpoints: decoder.checkpoints, hashed: hasher.finalize(), hashedCount: hashedCount,
                       consumed: decoder.compressedBytesConsumed, produced: decoder.uncompressedBytesProduced)
}

func decodeSpan(_ decoder: SpanDecoder, _ file: TempFile, _ checkpoint: Checkpoint, skip: UInt64 = 0, count: Int) throws -> [UInt8] {
    var buffer = [UInt8](repeating: 0, count: count)
    let n = try buffer.withUnsafeMutableBytes { try decoder.decode(file: file.fd, from: checkpoint, skip: skip, into: $0) }
    buffer.removeSubrange(n...)
    return buffer
}

/// The error kind `body` throws, or nil.
func codecErrorKind(_ body: () throws -> Void) -> CodecError.Kind? {
    do {
        try body()
        return nil
    } catch let error as CodecError {
        return error.kind
    } catch {
        return .io
    }
}

/// Gzip's CRC-32 (bitwise; test data is small).
func crc32Reference(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
        crc ^= UInt32(b)
        for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

/// `blob` decoded by the system's own decoder (`gzip -dc`, `zstd -dc`), not by Strata's:
/// a round trip through Strata's encoder and decoder alone could hide a bug both share.
/// scripts/deps installs both tools; a missing one is a failure naming it.
func decodeWithSystemTool(_ tool: String, _ blob: [UInt8], sourceLocation: SourceLocation = #_sourceLocation) throws -> [UInt8] {
    let input = try TempFile(blob)
    defer { input.remove() }
    let output = try TempFile()
    defer { output.remove() }
    let candidates: [String] = ["/usr/bin/" + tool, "/bin/" + tool]
    let found = candidates.first { (candidate: String) -> Bool in access(candidate, X_OK) == 0 }
    let path = try #require(found, "\(tool) is not installed (scripts/deps installs it)", sourceLocation: sourceLocation)
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, input.path, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output.path, O_WRONLY | O_TRUNC, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), strdup("-dc")]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv + [nil], environ)
    try #require(rc == 0, "\(path): posix_spawn failed: \(rc)", sourceLocation: sourceLocation)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    try #require(status == 0, "\(path) -dc: wait status \(status)", sourceLocation: sourceLocation)
    return try FileIO.readAll(output.path)
}
