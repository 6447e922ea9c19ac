import StrataSystem
import StrataTar

/// What the writers read entries from: the source tar as it is (`SeekableTarInput`), or
/// reordered with the prioritized files first (`PrioritizedTarInput`).
protocol SeekableEntryInput: AnyObject {
    /// The next entry with `sparseMap` nil and `size` its logical size.
    func next() throws -> TarEntry?
    /// The current entry's logical bytes; 0 at its end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
    /// Whether the entry `next` returned last belongs to the prioritized part at the front.
    var inPrioritizedPart: Bool { get }
}

extension SeekableTarInput: SeekableEntryInput {
    var inPrioritizedPart: Bool { false }
}

/// A layer's files to put first (a workload reads them at start, and lazy pullers fetch them in
/// one go right after mounting), and how to read the layer's tar a second time.
public struct Prioritization {
    /// Paths of the files, in the order they are read, as `normalizedName` gives them.
    public var paths: [String]
    /// Opens the source tar again (the first pass reads the one given to `write`).
    public var reopen: () throws -> TarSource
    /// A read-write file (empty, unlinked) the prioritized entries' data is spooled in.
    public var spool: FileDescriptor
    /// Write the eStargz landmark (`.prefetch.landmark`, or `.no.prefetch.landmark` when the
    /// layer holds none of the files). The zstd:chunked writer ignores it.
    var landmark = true

    public init(paths: [String], reopen: @escaping () throws -> TarSource, spool: FileDescriptor) {
        self.paths = paths; self.reopen = reopen; self.spool = spool
    }
}

/// What reordering did to a layer.
public struct PrioritizationResult: Sendable, Equatable {
    /// Prioritized paths the layer holds (moved or not).
    public var present: Set<String>
    /// Files moved to the front, in their new order.
    public var moved: [String]
}

/// The source tar reordered in two passes, as stargz's `estargz.Build` with prioritized files:
/// pass 1 reads the whole source, spooling each prioritized file (header kept, data to the spool
/// file) and noting its parent directories; then come, in the paths' order, each file preceded
/// by its parent directory entries not yet given, then (eStargz) the landmark; pass 2 reads
/// the source again and gives every other entry in its original order.
///
/// Safety: only a regular file (not a hardlink, not a whiteout) whose path occurs once in the
/// tar is moved, and only when every parent directory the tar holds first appears as a
/// directory; a parent directory moved is its first occurrence, so entries of one name keep
/// their order. Hardlinks to a moved file come after it, as before. Old landmarks are dropped.
final class PrioritizedTarInput: SeekableEntryInput {
    private struct Spooled {
        var entry: TarEntry
        var dataOffset: UInt64
    }
    private enum Item {
        case spooled(Spooled)
        case landmark(String)
    }
    private var front: [Item] = []
    private var frontIndex = 0
    private var current: (data: UInt64, size: UInt64, landmark: Bool)?
    private var position: UInt64 = 0
    private var movedOrdinals: Set<Int> = []
    private let reopen: () throws -> TarSource
    private let spool: FileDescriptor
    private var rest: SeekableTarInput?
    private var restOrdinal = 0
    private(set) var inPrioritizedPart = false
    private(set) var result = PrioritizationResult(present: [], moved: [])
    private let dropLandmarks: Bool

    init(source: TarSource, prioritization p: Prioritization) throws {
        reopen = p.reopen
        spool = p.spool
        dropLandmarks = true
        let wanted = Set(p.paths)
        var ancestors: Set<String> = []
        for path in wanted {
            var parts = path.split(separator: "/")
            while parts.count > 1 {
                parts.removeLast()
                ancestors.insert(parts.joined(separator: "/"))
            }
        }
        // Pass 1.
        let scan = SeekableTarInput(source: source)
        var files: [String: Spooled] = [:]
        var fileOrdinal: [String: Int] = [:]
        var counts: [String: Int] = [:]
        var directories: [String: (ordinal: Int, entry: TarEntry?)] = [:]   // first occurrence; nil entry: not a directory
        var spoolEnd: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var ordinal = 0
        while let entry = try scan.next() {
            defer { ordinal += 1 }
            let name = normalizedName(entry.path)
            if ancestors.contains(name), directories[name] == nil {
                directories[name] = (ordinal, entry.type == .directory ? entry : nil)
            }
            guard wanted.contains(name) else { continue }
            result.present.insert(name)
            counts[name, default: 0] += 1
            let base = name.split(separator: "/").last.map(String.init) ?? name
            guard counts[name] == 1, entry.type == .regular, !base.hasPrefix(".wh.") else { continue }
            var spooled = Spooled(entry: entry, dataOffset: spoolEnd)
            spooled.entry.headerOffset = 0
            var left = entry.size
            while left > 0 {
                let n = try buffer.withUnsafeMutableBytes {
                    try scan.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<Int(min(left, UInt64($0.count)))]))
                }
                guard n > 0 else { throw SeekableError("tar entry '\(entry.pathString)': data ends early") }
                try buffer.withUnsafeBytes { try spool.writeAll(UnsafeRawBufferPointer(rebasing: $0[0..<n]), at: spoolEnd) }
                spoolEnd += UInt64(n)
                left -= UInt64(n)
            }
            files[name] = spooled
            fileOrdinal[name] = ordinal
        }

        var given: Set<String> = []
        for path in p.paths where !given.contains(path) {
            guard counts[path] == 1, let file = files[path], let fileAt = fileOrdinal[path] else { continue }
            var parents: [String] = []
            var parts = path.split(separator: "/")
            while parts.count > 1 {
                parts.removeLast()
                parents.append(parts.joined(separator: "/"))
            }
            // A parent the tar holds as something else than a directory first: leave the file where it is.
            guard parents.allSatisfy({ directories[$0].map { $0.entry != nil } ?? true }) else { continue }
            for parent in parents.reversed() where !given.contains(parent) {
                guard let dir = directories[parent], let entry = dir.entry else { continue }
                // A directory entry after the file already in place stays after it: fine either way,
                // but only a directory before the file moves (it was before it in the source too).
                guard dir.ordinal < fileAt else { continue }
                given.insert(parent)
                movedOrdinals.insert(dir.ordinal)
                front.append(.spooled(Spooled(entry: entry, dataOffset: 0)))
            }
            given.insert(path)
            movedOrdinals.insert(fileAt)
            front.append(.spooled(file))
            result.moved.append(path)
        }
        if p.landmark {
            front.append(.landmark(result.moved.isEmpty ? EStargz.noPrefetchLandmark : EStargz.prefetchLandmark))
        }
    }

    func next() throws -> TarEntry? {
        if frontIndex < front.count {
            defer { frontIndex += 1 }
            inPrioritizedPart = true
            position = 0
            switch front[frontIndex] {
            case .spooled(let s):
                current = (s.dataOffset, s.entry.type == .regular ? s.entry.size : 0, false)
                return s.entry
            case .landmark(let name):
                current = (0, 1, true)
                return TarEntry(path: Array(name.utf8), type: .regular, mode: UInt32(EStargz.landmarkContents), size: 1)
            }
        }
        inPrioritizedPart = false
        current = nil
        if rest == nil { rest = SeekableTarInput(source: try reopen()) }
        while let entry = try rest!.next() {
            defer { restOrdinal += 1 }
            if movedOrdinals.contains(restOrdinal) { continue }
            if dropLandmarks {
                let name = normalizedName(entry.path)
                if name == EStargz.prefetchLandmark || name == EStargz.noPrefetchLandmark { continue }
            }
            return entry
        }
        return nil
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard let c = current else { return try rest?.read(into: buffer) ?? 0 }
        guard position < c.size, buffer.count > 0 else { return 0 }
        if c.landmark {
            buffer[0] = EStargz.landmarkContents
            position = 1
            return 1
        }
        let n = Int(min(UInt64(buffer.count), c.size - position))
        let got = try spool.readFully(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: c.data + position)
        guard got == n else { throw SeekableError("prioritized files' spool ends early") }
        position += UInt64(n)
        return n
    }
}
