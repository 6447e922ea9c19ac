import Foundation
import Testing
@testable import StrataTar

/// All entries of an archive, with each entry's stored data read through the reader.
func readAll(_ bytes: [UInt8]) throws -> [(TarEntry, [UInt8])] {
    let reader = TarReader(source: MemoryTarSource(bytes))
    var out: [(TarEntry, [UInt8])] = []
    while let entry = try reader.next() {
        #expect(reader.offset == entry.dataOffset)
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 777)   // odd size to exercise partial reads
        while true {
            let n = try chunk.withUnsafeMutableBytes { try reader.readData(into: $0) }
            if n == 0 { break }
            data += chunk[0..<n]
        }
        out.append((entry, data))
    }
    return out
}

/// The error the reader reports for `bytes` (after reading every entry it can), or nil.
func readError(_ bytes: [UInt8]) -> TarError? {
    let reader = TarReader(source: MemoryTarSource(bytes))
    do {
        while try reader.next() != nil {}
        return nil
    } catch let e as TarError {
        return e
    } catch {
        Issue.record("unexpected error type \(error)")
        return nil
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }

/// A header block built by hand: fields as given, valid checksum unless told otherwise.
func rawHeader(name: String, type: Character = "0", size: UInt64 = 0, magic: HeaderMagic = .ustar,
               edit: (inout [UInt8]) -> Void = { _ in }) -> [UInt8] {
    var b = [UInt8](repeating: 0, count: 512)
    writeString(bytes(name), into: &b, HeaderField.name)
    writeOctal(0o644, into: &b, HeaderField.mode)
    writeOctal(0, into: &b, HeaderField.uid)
    writeOctal(0, into: &b, HeaderField.gid)
    writeOctal(size, into: &b, HeaderField.size)
    writeOctal(0, into: &b, HeaderField.mtime)
    b[HeaderField.typeflag] = type.asciiValue!
    switch magic {
    case .ustar: writeString(bytes("ustar\u{0}00"), into: &b, 257..<265)
    case .gnu: writeString(bytes("ustar  \u{0}"), into: &b, 257..<265)
    case .v7: break
    }
    edit(&b)
    writeChecksum(into: &b)
    return b
}

func padded(_ data: [UInt8]) -> [UInt8] {
    data + [UInt8](repeating: 0, count: TarWriter.padding(for: UInt64(data.count)))
}

/// A PAX 'x' (or 'g') header whose data is exactly `data`.
func paxHeader(_ data: [UInt8], type: Character = "x") -> [UInt8] {
    rawHeader(name: "PaxHeaders/x", type: type, size: UInt64(data.count)) + padded(data)
}

func paxData(_ records: [(String, [UInt8])]) -> [UInt8] {
    records.flatMap { PaxRecords.encode(key: $0.0, value: $0.1) }
}

// MARK: - Temporary directories and external tools

final class TempDir {
    let url: URL
    var path: String { url.path }

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("strata-tar-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> String { url.appendingPathComponent(name).path }
}

struct ToolResult {
    var status: Int32
    var stderr: String
}

@discardableResult
func run(_ args: [String], in dir: String? = nil) throws -> ToolResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = args
    if let dir { p.currentDirectoryURL = URL(fileURLWithPath: dir) }
    let err = Pipe()
    p.standardError = err
    p.standardOutput = FileHandle.nullDevice
    try p.run()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ToolResult(status: p.terminationStatus, stderr: String(decoding: errData, as: UTF8.self))
}

func toolExists(_ name: String) -> Bool {
    (try? run(["sh", "-c", "command -v \(name)"]).status) == 0
}

func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}
