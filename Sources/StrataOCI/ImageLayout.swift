#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StrataHash
import StrataSystem

/// An OCI image layout (image-layout.md): `oci-layout`, `index.json`, `blobs/<alg>/<hex>`, as a
/// directory or as the members of an uncompressed tar (`oci-archive:FILE`), read in place.
/// Read-only; `ImageLayoutWriter` writes one. Every blob read here is size- and digest-checked.
public struct ImageLayout: Sendable {
    /// The directory or archive file, as given (without a trailing '/').
    public let path: String
    /// The archive the layout is in; nil for a directory.
    public let archive: ImageArchive?

    /// Opens a layout directory, checking `oci-layout` names version 1.0.0. A regular file is
    /// opened as an OCI archive when it is one; anything else is an error saying what it is.
    public init(path: String) throws {
        let path = ImageLayout.trimmed(path)
        guard FileIO.exists(path) else { throw OCIError("\(path): no such directory (expected an OCI image layout)") }
        if FileIO.isDirectory(path) {
            try ImageLayout.checkLayoutFile(in: path)
            self.init(checkedDirectory: path)
            return
        }
        let archive = try ImageLayout.openArchive(path)
        guard case .ociArchive = archive.kind else {
            throw OCIError("\(path): a docker-archive (docker save), not an OCI layout: name it docker-archive:\(path)")
        }
        try self.init(archive: archive)
    }

    private init(checkedDirectory: String) {
        path = checkedDirectory
        archive = nil
    }

    /// A layout inside an archive (`archive.kind` is `.ociArchive`).
    public init(archive: ImageArchive) throws {
        path = archive.path
        self.archive = archive
        try ImageLayout.checkLayoutFile(archive)
    }

    /// Lists an archive; a file that is not a tar image archive is an error saying what it is
    /// and how to convert it.
    static func openArchive(_ path: String) throws -> ImageArchive {
        let what = ImageArchive.describe(path)
        guard what == "a tar archive" else {
            throw OCIError("\(path): \(what), not an OCI image layout or image archive; \(ImageArchive.conversionHint)")
        }
        let archive = try ImageArchive(path: path)
        if case .notAnImage(let why) = archive.kind {
            throw OCIError("\(path): \(why), not an image archive; \(ImageArchive.conversionHint)")
        }
        return archive
    }

    static func checkLayoutFile(_ archive: ImageArchive) throws {
        let name = "\(archive.path): member oci-layout"
        let layout = try JSONCoding.decode(LayoutFile.self, from: try archive.read(try archive.member("oci-layout")), what: name)
        guard layout.imageLayoutVersion == supportedVersion else {
            throw OCIError("\(name): imageLayoutVersion \"\(layout.imageLayoutVersion)\" is not supported (expected \"\(supportedVersion)\")")
        }
    }

    static let supportedVersion = "1.0.0"

    private struct LayoutFile: Codable { var imageLayoutVersion: String }

    static func checkLayoutFile(in path: String) throws {
        let file = "\(path)/oci-layout"
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(file)
        } catch let error as SystemError where error.code == ENOENT {
            throw OCIError("\(file): missing, so \(path) is not an OCI image layout; \(ImageArchive.conversionHint)")
        } catch {
            throw OCIError("\(file): cannot read: \(error)")
        }
        let layout = try JSONCoding.decode(LayoutFile.self, from: bytes, what: file)
        guard layout.imageLayoutVersion == supportedVersion else {
            throw OCIError("\(file): imageLayoutVersion \"\(layout.imageLayoutVersion)\" is not supported (expected \"\(supportedVersion)\")")
        }
    }

    static func trimmed(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }

    /// Where a blob lives: `<layout>/blobs/<alg>/<hex>`. Digest validation keeps this inside the layout.
    public func blobPath(_ d: Digest) -> String {
        "\(path)/blobs/\(d.algorithm)/\(d.hex)"
    }

    public func blobExists(_ d: Digest) -> Bool {
        if let archive { return archive.members["blobs/\(d.algorithm)/\(d.hex)"] != nil }
        return FileIO.exists(blobPath(d))
    }

    /// Where a blob's bytes are: its own file in a directory, a member's range in an archive.
    public func blobLocation(_ d: Descriptor) throws -> BlobLocation {
        guard let archive else { return BlobLocation(path: blobPath(d.digest), offset: 0, size: UInt64(max(d.size, 0)), isWholeFile: true) }
        guard let m = archive.members["blobs/\(d.digest.algorithm)/\(d.digest.hex)"] else {
            throw OCIError("\(blobName(d.digest)): missing (no member blobs/\(d.digest.algorithm)/\(d.digest.hex))")
        }
        guard Int64(m.size) == d.size else {
            throw OCIError("\(blobName(d.digest)): size \(m.size) does not match descriptor size \(d.size)")
        }
        return BlobLocation(path: archive.path, offset: m.offset, size: m.size, isWholeFile: false)
    }

    /// "blob sha256:… in /x/img", the prefix of every blob error.
    func blobName(_ d: Digest) -> String { "blob \(d) in \(path)" }

    /// Reads a (small) blob whole, after checking its size against the descriptor and its sha256
    /// against the digest. Meant for manifests, indexes and configs; use `verifyBlob` for layers.
    public func readVerifiedBlob(_ d: Descriptor) throws -> [UInt8] {
        let name = blobName(d.digest)
        try d.digest.requireVerifiable(name)
        let (fd, base) = try openBlob(d, name: name)
        defer { fd.close() }
        var bytes = [UInt8](repeating: 0, count: Int(d.size))
        let n = try bytes.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in
            try fd.readFully(into: b, at: base)
        }
        guard n == bytes.count else {
            throw OCIError("\(name): file shrank while read (\(n) of \(d.size) bytes)")
        }
        let actual = SHA256Hasher.hex(of: bytes)
        guard actual == d.digest.hex else {
            throw OCIError("\(name): content has digest sha256:\(actual), not the descriptor's")
        }
        return bytes
    }

    /// Checks a blob of any size by streaming it through sha256.
    public func verifyBlob(_ d: Descriptor) throws {
        let name = blobName(d.digest)
        try d.digest.requireVerifiable(name)
        let (fd, base) = try openBlob(d, name: name)
        defer { fd.close() }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while offset < UInt64(d.size) {
            let want = Int(min(UInt64(buffer.count), UInt64(d.size) - offset))
            let n = try buffer.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in
                try fd.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]), at: base + offset)
            }
            if n == 0 { break }
            buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += UInt64(n)
        }
        guard offset == UInt64(d.size) else {
            throw OCIError("\(name): size \(offset) does not match descriptor size \(d.size)")
        }
        let actual = hasher.finalizeHex()
        guard actual == d.digest.hex else {
            throw OCIError("\(name): content has digest sha256:\(actual), not the descriptor's")
        }
    }

    /// Opens a blob and checks its size on disk before anything is read; returns the file and
    /// the offset of the blob in it (0 but in an archive).
    private func openBlob(_ d: Descriptor, name: String) throws -> (FileDescriptor, UInt64) {
        guard d.size >= 0 else { throw OCIError("\(name): descriptor size \(d.size) is negative") }
        if let archive {
            let location = try blobLocation(d)
            return (try archive.open(), location.offset)
        }
        let file = blobPath(d.digest)
        let fd: FileDescriptor
        do {
            fd = try FileDescriptor.open(file, O_RDONLY)
        } catch let error as SystemError where error.code == ENOENT {
            throw OCIError("\(name): missing (no file \(file))")
        } catch let error as SystemError {
            throw OCIError("\(name): cannot open \(file): \(String(cString: strerror(error.code)))")
        }
        do {
            let st = try fd.stat()
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw OCIError("\(name): \(file) is not a regular file")
            }
            guard Int64(st.st_size) == d.size else {
                throw OCIError("\(name): size \(st.st_size) does not match descriptor size \(d.size)")
            }
        } catch {
            fd.close()
            throw error
        }
        return (fd, 0)
    }

    public var indexPath: String { archive == nil ? "\(path)/index.json" : "\(path): member index.json" }

    /// The top-level index.json (not a blob, so not digest-checked).
    public func index() throws -> ImageIndex {
        let file = indexPath
        let bytes: [UInt8]
        if let archive {
            bytes = try archive.read(try archive.member("index.json"))
        } else { do {
            bytes = try FileIO.readAll(file)
        } catch let error as SystemError where error.code == ENOENT {
            throw OCIError("\(file): missing")
        } catch let error as SystemError {
            throw OCIError("\(file): cannot read: \(String(cString: strerror(error.code)))")
        } }
        let index = try JSONCoding.decode(ImageIndex.self, from: bytes, what: file)
        guard index.schemaVersion == 2 else {
            throw OCIError("\(file): schemaVersion \(index.schemaVersion) is not supported (expected 2)")
        }
        return index
    }

    /// The tags (`org.opencontainers.image.ref.name`) in index.json, in file order.
    public func tags() throws -> [String] {
        try index().manifests.compactMap(\.refName)
    }
}

/// A blob's bytes: `size` bytes at `offset` in the file at `path` (the whole file in a layout
/// directory, a member's data in an archive).
public struct BlobLocation: Sendable, Hashable {
    public var path: String
    public var offset: UInt64
    public var size: UInt64
    public var isWholeFile: Bool
    public init(path: String, offset: UInt64, size: UInt64, isWholeFile: Bool) {
        self.path = path; self.offset = offset; self.size = size; self.isWholeFile = isWholeFile
    }
}
