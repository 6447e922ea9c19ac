#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// One entry of the layer tar, in the order it is written.
struct LayerItem {
    enum Kind {
        /// `.wh.NAME`: NAME of the lower layers is deleted.
        case whiteout
        /// `.wh..wh..opq`: everything the lower layers have in this directory is hidden.
        case opaqueMarker
        /// A file, directory, link or device whose metadata is read from `source`; a regular
        /// file's bytes come from `data` when set (a metacopy file's data is in the lower).
        case entry(source: [UInt8], data: [UInt8]?)
    }
    /// Relative to the image root, without "./" or a trailing slash.
    var path: [UInt8]
    var kind: Kind
}

/// Turns an overlayfs upper directory into the ordered entries of an OCI layer (image-spec
/// layer.md): in each directory the directory itself, then its opaque marker, then its
/// whiteouts, then the other children in byte order, depth first. The order depends only on
/// names, so the same upper always gives the same layer.
///
/// A renamed lower directory (redirect xattr) cannot be expressed as a diff: the layer format
/// has no rename. It is written as a new directory, made opaque, holding the merged view of its
/// whole subtree; the children never copied up are read from `lowerRoot`, a read-only view of
/// the lower image. Its old name gets deleted by the whiteout overlayfs left there.
struct UpperWalker {
    let upperRoot: [UInt8]
    /// Root of a read-only view of the lower image (a strata mount); nil when not needed.
    let lowerRoot: [UInt8]?
    private(set) var items: [LayerItem] = []
    private(set) var warnings: [String] = []

    init(upperRoot: String, lowerRoot: String?) {
        self.upperRoot = Array(upperRoot.utf8)
        self.lowerRoot = lowerRoot.map { Array($0.utf8) }
    }

    static let whiteoutPrefix = Array(".wh.".utf8)
    static let opaqueName = Array(".wh..wh..opq".utf8)

    mutating func walk() throws -> [LayerItem] {
        items = []
        // The upper root is the image root: its own metadata is whatever made the directory,
        // so it is not written; an opaque root still hides the whole lower image.
        let opaque = try OverlayUpper.isOpaque(upperRoot)
        try diffChildren(upper: upperRoot, tar: [], lower: opaque ? nil : [], opaque: opaque)
        return items
    }

    // MARK: - Diff: an upper directory merged with its lower

    /// `lower` is this directory's path in the lower image (nil when it has none to merge).
    private mutating func diffChildren(upper: [UInt8], tar: [UInt8], lower: [UInt8]?, opaque: Bool) throws {
        if opaque { items.append(LayerItem(path: Paths.join(tar, UpperWalker.opaqueName), kind: .opaqueMarker)) }
        var others: [([UInt8], stat)] = []
        for name in try Paths.list(upper) {
            let st = try Paths.lstatOrThrow(Paths.join(upper, name))
            if OverlayFormat.isWhiteout(st) {
                // In an opaque directory there is nothing below to delete.
                if !opaque { items.append(LayerItem(path: Paths.join(tar, UpperWalker.whiteoutPrefix + name), kind: .whiteout)) }
            } else {
                try checkName(name, in: upper)
                others.append((name, st))
            }
        }
        for (name, st) in others {
            let child = Paths.join(upper, name)
            let childTar = Paths.join(tar, name)
            let childLower = lower.map { Paths.join($0, name) }
            guard Paths.isDirectory(st) else {
                try file(child, st, tar: childTar, parentLower: lower, name: name)
                continue
            }
            items.append(LayerItem(path: childTar, kind: .entry(source: child, data: nil)))
            if let redirect = try OverlayUpper.redirect(child) {
                let from = OverlayUpper.resolve(redirect: redirect, parentLower: lower)
                try requireLower(for: child)
                items.append(LayerItem(path: Paths.join(childTar, UpperWalker.opaqueName), kind: .opaqueMarker))
                try materializeChildren(upper: child, tar: childTar, lower: try lowerDirectory(from))
            } else {
                let childOpaque = try OverlayUpper.isOpaque(child)
                try diffChildren(upper: child, tar: childTar, lower: childOpaque ? nil : childLower, opaque: childOpaque)
            }
        }
    }

    // MARK: - Materialize: the full merged view below a renamed directory

    /// Writes every child of the merged directory (`upper` over `lower`, either may be nil).
    private mutating func materializeChildren(upper: [UInt8]?, tar: [UInt8], lower: [UInt8]?) throws {
        var hidden = Set<[UInt8]>()
        var upperChildren: [[UInt8]: stat] = [:]
        if let upper {
            for name in try Paths.list(upper) {
                let st = try Paths.lstatOrThrow(Paths.join(upper, name))
                if OverlayFormat.isWhiteout(st) {
                    hidden.insert(name)
                } else {
                    try checkName(name, in: upper)
                    upperChildren[name] = st
                }
            }
        }
        var names = Set(upperChildren.keys)
        if let lower, let lowerRoot {
            for name in try Paths.list(Paths.join(lowerRoot, lower)) where !hidden.contains(name) {
                names.insert(name)
            }
        }
        for name in names.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let childTar = Paths.join(tar, name)
            let childLower = lower.map { Paths.join($0, name) }
            if let upper, let st = upperChildren[name] {
                let child = Paths.join(upper, name)
                guard Paths.isDirectory(st) else {
                    try file(child, st, tar: childTar, parentLower: lower, name: name)
                    continue
                }
                items.append(LayerItem(path: childTar, kind: .entry(source: child, data: nil)))
                let from: [UInt8]?
                if let redirect = try OverlayUpper.redirect(child) {
                    from = OverlayUpper.resolve(redirect: redirect, parentLower: lower)
                } else if try OverlayUpper.isOpaque(child) {
                    from = nil
                } else {
                    from = childLower
                }
                try materializeChildren(upper: child, tar: childTar, lower: try lowerDirectory(from))
            } else if let lowerRoot, let childLower {
                let source = Paths.join(lowerRoot, childLower)
                let st = try Paths.lstatOrThrow(source)
                if (st.st_mode & S_IFMT) == S_IFSOCK { warnSocket(source); continue }
                items.append(LayerItem(path: childTar, kind: .entry(source: source, data: nil)))
                if Paths.isDirectory(st) {
                    try materializeChildren(upper: nil, tar: childTar, lower: childLower)
                }
            }
        }
    }

    // MARK: - Helpers

    /// A non-directory of the upper. A metacopy file takes its bytes from the lower file it
    /// was copied from (its redirect, else the same path).
    private mutating func file(_ path: [UInt8], _ st: stat, tar: [UInt8], parentLower: [UInt8]?, name: [UInt8]) throws {
        let type = st.st_mode & S_IFMT
        if type == S_IFSOCK { warnSocket(path); return }
        var data: [UInt8]?
        if type == S_IFREG, try OverlayUpper.isMetacopy(path) {
            try requireLower(for: path)
            let origin = try OverlayUpper.redirect(path).map { OverlayUpper.resolve(redirect: $0, parentLower: parentLower) }
                ?? parentLower.map { Paths.join($0, name) }
            guard let origin, let lowerRoot else {
                throw CommitError("\(Paths.printable(path)): metacopy file whose lower file cannot be located")
            }
            data = Paths.join(lowerRoot, origin)
        }
        items.append(LayerItem(path: tar, kind: .entry(source: path, data: data)))
    }

    /// `path` (relative to the lower root) when the lower view has a directory there.
    private func lowerDirectory(_ path: [UInt8]?) throws -> [UInt8]? {
        guard let path, let lowerRoot else { return nil }
        guard let st = try Paths.lstatIfExists(Paths.join(lowerRoot, path)), Paths.isDirectory(st) else { return nil }
        return path
    }

    /// A real file named `.wh.*` would read back as a whiteout: the layer format cannot hold it.
    private func checkName(_ name: [UInt8], in directory: [UInt8]) throws {
        if name.starts(with: UpperWalker.whiteoutPrefix) {
            throw CommitError("\(Paths.printable(Paths.join(directory, name))): names starting with .wh. are reserved for whiteouts in OCI layers and cannot be committed")
        }
    }

    private func requireLower(for path: [UInt8]) throws {
        guard lowerRoot != nil else {
            throw CommitError("\(Paths.printable(path)): renamed or metacopy entry needs the lower image's content, but no lower view was given")
        }
    }

    private mutating func warnSocket(_ path: [UInt8]) {
        warnings.append("\(Paths.printable(path)): socket skipped (a layer cannot hold sockets)")
    }
}
