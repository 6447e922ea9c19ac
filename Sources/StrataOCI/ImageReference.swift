import StrataSystem

/// Where an image is read from: a layout directory, or an archive read in place (skopeo's
/// transport names).
public enum ImageTransport: String, Hashable, Sendable {
    /// `DIR` (or `oci:DIR`); a plain path to an archive file is recognised by its content.
    case layout
    /// `oci-archive:FILE`: a tar of an OCI layout.
    case ociArchive = "oci-archive"
    /// `docker-archive:FILE`: `docker save` output.
    case dockerArchive = "docker-archive"
    /// `docker://HOST[:PORT]/REPO[:TAG|@DIGEST]`: an image in a registry (StrataRegistry reads
    /// it; `layoutPath` then holds the whole reference).
    case registry = "docker"
}

/// An image as written on the command line: `DIR`, `DIR:TAG` or `DIR@sha256:HEX` for a layout
/// (also `oci:DIR…`), `oci-archive:FILE[:TAG]`, `docker-archive:FILE[:REPO:TAG]`.
public struct ImageReference: Hashable, Sendable, CustomStringConvertible {
    /// The layout directory or archive file.
    public var layoutPath: String
    /// A layout's tag, or for a docker-archive the REPO:TAG.
    public var tag: String?
    public var digest: Digest?
    public var transport: ImageTransport = .layout

    public init(layoutPath: String, tag: String? = nil, digest: Digest? = nil) {
        self.layoutPath = layoutPath
        self.tag = tag
        self.digest = digest
    }

    /// A directory name may itself hold ':' or '@', so an existing directory wins; otherwise
    /// split at the last '@' (when a digest follows), else at the last ':' after the last '/'.
    public init(parsing text: String) throws {
        guard !text.isEmpty else { throw OCIError("empty image reference") }
        for (prefix, transport) in [("oci-archive:", ImageTransport.ociArchive), ("docker-archive:", .dockerArchive), ("oci:", .layout)]
        where text.hasPrefix(prefix) && !FileIO.exists(text) {
            try self.init(transport: transport, rest: String(text.dropFirst(prefix.count)), text: text)
            return
        }
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

    /// skopeo's form `PATH[:REF]`: PATH ends at the first ':' unless a longer prefix names an
    /// existing file or directory (paths with ':' in them); `PATH@DIGEST` for layouts and oci-archives.
    init(transport: ImageTransport, rest: String, text: String) throws {
        guard !rest.isEmpty else { throw OCIError("image reference \"\(text)\": no path after \"\(transport.rawValue):\"") }
        if transport != .dockerArchive, let at = rest.lastIndex(of: "@"), !FileIO.exists(rest) {
            let suffix = String(rest[rest.index(after: at)...])
            if Digest.registeredHexLength.keys.contains(where: { suffix.hasPrefix("\($0):") }) {
                let digest: Digest
                do { digest = try Digest(parsing: suffix) } catch let error as OCIError {
                    throw OCIError("image reference \"\(text)\": \(error.message)")
                }
                self.init(layoutPath: String(rest[..<at]), digest: digest)
                self.transport = transport
                return
            }
        }
        let colons = rest.indices.filter { rest[$0] == ":" }
        var split = colons.first
        if FileIO.exists(rest) {
            split = nil
        } else if let longest = colons.last(where: { FileIO.exists(String(rest[..<$0])) }) {
            split = longest
        }
        if let split {
            let tag = String(rest[rest.index(after: split)...])
            guard !tag.isEmpty else { throw OCIError("image reference \"\(text)\": empty tag after ':'") }
            self.init(layoutPath: String(rest[..<split]), tag: tag)
        } else {
            self.init(layoutPath: rest)
        }
        self.transport = transport
    }

    public var description: String {
        let prefix = transport == .layout || transport == .registry ? "" : "\(transport.rawValue):"
        if let digest { return "\(prefix)\(layoutPath)@\(digest)" }
        if let tag { return "\(prefix)\(layoutPath):\(tag)" }
        return prefix + layoutPath
    }
}
