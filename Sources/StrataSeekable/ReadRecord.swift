#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The files a workload read, in order: the format stargz-snapshotter's
/// `ctr-remote image optimize --record-out` writes and `nerdctl image convert
/// --estargz-record-in` reads (its `recorder.Entry`): one JSON object a line,
/// `{"path":"usr/bin/python3","manifestDigest":"sha256:…","layerIndex":2}`, the path as a tar
/// names it without a leading "/", `layerIndex` the index in the manifest's layers (0 = the
/// bottom one) of the layer holding the file. Read also as plain text: one path a line.
public struct ReadRecord: Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var path: String
        public var manifestDigest: String?
        public var layerIndex: Int?
        public init(path: String, manifestDigest: String? = nil, layerIndex: Int? = nil) {
            self.path = path; self.manifestDigest = manifestDigest; self.layerIndex = layerIndex
        }
    }
    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    /// Parses `bytes` read from `file` (named in errors with the line number). Blank lines are skipped.
    public static func parse(_ bytes: [UInt8], file: String) throws -> ReadRecord {
        var entries: [Entry] = []
        let decoder = JSONDecoder()
        for (i, raw) in bytes.split(separator: 0x0a, omittingEmptySubsequences: false).enumerated() {
            var line = Array(raw)
            while let last = line.last, last == 0x0d || last == 0x20 || last == 0x09 { line.removeLast() }
            while let first = line.first, first == 0x20 || first == 0x09 { line.removeFirst() }
            let text = String(decoding: line, as: UTF8.self)
            if text.isEmpty { continue }
            func fail(_ why: String) -> SeekableError { SeekableError("\(file): line \(i + 1): \(why)") }
            guard !line.contains(0) else { throw fail("not text") }
            if text.hasPrefix("{") {
                let entry: Entry
                do { entry = try decoder.decode(Entry.self, from: Data(text.utf8)) } catch {
                    throw fail("not a record entry ({\"path\": …, \"layerIndex\": …})")
                }
                if let index = entry.layerIndex, index < 0 { throw fail("layerIndex \(index) is negative") }
                guard !normalized(entry.path).isEmpty else { throw fail("empty path") }
                entries.append(Entry(path: normalized(entry.path), manifestDigest: entry.manifestDigest, layerIndex: entry.layerIndex))
            } else {
                guard !normalized(text).isEmpty else { throw fail("empty path") }
                entries.append(Entry(path: normalized(text)))
            }
        }
        return ReadRecord(entries: entries)
    }

    /// The JSON-lines form.
    public func encoded() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var out: [UInt8] = []
        for entry in entries {
            do { out += Array(try encoder.encode(entry)) } catch { throw SeekableError("cannot encode a read record: \(error)") }
            out.append(0x0a)
        }
        return out
    }

    /// A path as the writers compare tar names ("./a//b/", "/a/b" and "a/b" are one).
    public static func normalized(_ path: String) -> String { normalizedName(Array(path.utf8)) }
}
