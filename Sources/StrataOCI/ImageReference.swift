import StrataSystem

/// An image in a layout directory as written on the command line: `DIR`, `DIR:TAG` or
/// `DIR@sha256:HEX`.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    public var layoutPath: String
    public var tag: String?
    public var digest: Digest?

    public init(layoutPath: String, tag: String? = nil, digest: Digest? = nil) {
        self.layoutPath = layoutPath
        self.tag = tag
        self.digest = digest
    }

    /// A directory name may itself hold ':' or '@', so an existing directory wins; otherwise
    /// split at the last '@' (when a digest follows), else at the last ':' after the last '/'.
    public init(parsing text: String) throws {
        guard !text.isEmpty else { throw OCIError("empty image reference") }
        if FileIO.isDirectory(text) {
            self.init(layoutPath: text)
            return
        }
        if let at = text.lastIndex(of: "@") {
            let dir = String(text[..<at])
            let suffix = String(text[text.index(after: at)...])
            // Only a registered algorithm makes the '@' a digest separator; "my@dir" stays a path.
            if Digest.registeredHexLength.keys.contains(where: { suffix.hasPrefix("\($0):") }) {
                guard !dir.isEmpty else { throw OCIError("image reference \"\(text)\": no layout directory before '@'") }
                let digest: Digest
                do {
                    digest = try Digest(parsing: suffix)
                } catch let error as OCIError {
                    throw OCIError("image reference \"\(text)\": \(error.message)")
                }
                self.init(layoutPath: dir, digest: digest)
                return
            }
        }
        let lastSlash = text.lastIndex(of: "/")
        if let colon = text.lastIndex(of: ":"), lastSlash.map({ colon > $0 }) ?? true {
            let dir = String(text[..<colon])
            let tag = String(text[text.index(after: colon)...])
            guard !dir.isEmpty else { throw OCIError("image reference \"\(text)\": no layout directory before ':'") }
            guard !tag.isEmpty else { throw OCIError("image reference \"\(text)\": empty tag after ':'") }
            self.init(layoutPath: dir, tag: tag)
            return
        }
        self.init(layoutPath: text)
    }

    public var description: String {
        if let digest { return "\(layoutPath)@\(digest)" }
        if let tag { return "\(layoutPath):\(tag)" }
        return layoutPath
    }
}
