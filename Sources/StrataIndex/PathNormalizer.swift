/// Turns an archive path into the union's canonical form: components joined by "/", no leading
/// "/" or "./", no trailing "/", "" for the root. `..` that would climb above the root is an escape.
enum PathNormalizer {
    struct Escape: Error {}

    static func normalize(_ raw: [UInt8]) throws(Escape) -> [UInt8] {
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
