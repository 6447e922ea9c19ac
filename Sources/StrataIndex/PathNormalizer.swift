/// Turns an archive path into the union's canonical form: components joined by "/", no leading
/// "/" or "./", no trailing "/", "" for the root. `..` that would climb above the root is an escape.
enum PathNormalizer {
    struct Escape: Error {}

    static func normalize(_ raw: [UInt8]) throws(Escape) -> [UInt8] {
        if let plain = alreadyNormal(raw) { return plain }
        var parts: [ArraySlice<UInt8>] = []
        for part in raw.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: true) {
            if part.count == 1 && part.first == UInt8(ascii: ".") { continue }
            if part.count == 2 && part.first == UInt8(ascii: ".") && part.last == UInt8(ascii: ".") {
                if parts.isEmpty { throw Escape() }
                parts.removeLast()
                continue
            }
            parts.append(part)
        }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        for (i, p) in parts.enumerated() {
            if i > 0 { out.append(UInt8(ascii: "/")) }
            out.append(contentsOf: p)
        }
        return out
    }

    /// The common case without splitting: a path with no empty, "." or ".." component (a
    /// leading "./" and a trailing "/" aside), returned as it is or with those trimmed; nil when
    /// it needs the full treatment.
    @inline(__always)
    static func alreadyNormal(_ raw: [UInt8]) -> [UInt8]? {
        raw.withUnsafeBufferPointer { b -> [UInt8]? in
            var start = 0, end = b.count
            while end > 0 && b[end - 1] == UInt8(ascii: "/") { end -= 1 }
            if end >= 2 && b[0] == UInt8(ascii: ".") && b[1] == UInt8(ascii: "/") { start = 2 }
            if start == end { return start == 0 && end == 0 && b.count == 0 ? [] : nil }
            var componentStart = start
            var i = start
            while i <= end {
                if i == end || b[i] == UInt8(ascii: "/") {
                    let n = i - componentStart
                    if n == 0 { return nil }
                    if b[componentStart] == UInt8(ascii: "."), n == 1 || (n == 2 && b[componentStart + 1] == UInt8(ascii: ".")) { return nil }
                    componentStart = i + 1
                }
                i += 1
            }
            return start == 0 && end == b.count ? raw : Array(b[start..<end])
        }
    }

    /// NAME_MAX: the longest name a Linux file system takes (a longer one makes its whole
    /// directory unlistable through the kernel: readdir fails with ENAMETOOLONG).
    static let nameMax = 255
    /// PATH_MAX less its NUL: the longest path, or symlink target, the kernel takes in one call.
    static let pathMax = 4095

    /// Why an entry cannot be served as Linux would hold it (umoci refuses such entries too),
    /// or nil: a path component over NAME_MAX, a path or a link target over PATH_MAX.
    static func limitViolation(_ e: IndexEntryInput) -> String? {
        if let why = limitViolation(path: e.path) { return why }
        switch e.kind {
        case .symlink where e.linkTarget.count > pathMax:
            return "symlink target of \(e.linkTarget.count) bytes is longer than \(pathMax) (PATH_MAX)"
        case .hardlink:
            return limitViolation(path: e.linkTarget).map { "hardlink target: " + $0 }
        default:
            return nil
        }
    }

    /// The rule for a normalised path.
    static func limitViolation(path: [UInt8]) -> String? {
        if path.count > pathMax { return "path of \(path.count) bytes is longer than \(pathMax) (PATH_MAX)" }
        if path.count <= nameMax { return nil }   // no name can be longer than the path
        for name in path.split(separator: UInt8(ascii: "/")) where name.count > nameMax {
            return "name '\(abbreviated(name))' is longer than \(nameMax) bytes (NAME_MAX)"
        }
        return nil
    }

    /// A name for a one-line message: its first 64 bytes, and its length when it is longer.
    static func abbreviated<C: Collection<UInt8>>(_ bytes: C) -> String {
        if bytes.count <= 64 { return String(decoding: bytes, as: UTF8.self) }
        return String(decoding: bytes.prefix(64), as: UTF8.self) + "…(\(bytes.count) bytes)"
    }

    static let whiteoutPrefix: [UInt8] = Array(".wh.".utf8)
    static let opaqueName: [UInt8] = Array(".wh..wh..opq".utf8)
    static let metaPrefix: [UInt8] = Array(".wh..wh.".utf8)

    enum Whiteout { case none, opaque(directory: [UInt8]), hides([UInt8]), aufsMeta, invalid }

    /// Classifies a normalised path by its last component (image-spec layer.md whiteouts).
    static func whiteout(_ path: [UInt8]) -> Whiteout {
        let slash = path.lastIndex(of: UInt8(ascii: "/"))
        let nameStart = slash.map { $0 + 1 } ?? 0
        let name = path[nameStart...]
        guard name.starts(with: whiteoutPrefix) else { return .none }
        let parent = Array(path[..<(slash ?? 0)])
        if name.elementsEqual(opaqueName) { return .opaque(directory: parent) }
        if name.starts(with: metaPrefix) { return .aufsMeta }
        let hidden = name.dropFirst(whiteoutPrefix.count)
        if hidden.isEmpty || hidden.elementsEqual([UInt8(ascii: ".")]) || hidden.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) {
            return .invalid
        }
        return .hides(parent.isEmpty ? Array(hidden) : parent + [UInt8(ascii: "/")] + hidden)
    }
}
