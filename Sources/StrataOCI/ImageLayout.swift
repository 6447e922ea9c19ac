#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StrataHash
import StrataSystem

/// An OCI image layout directory (image-layout.md): `oci-layout`, `index.json`, `blobs/<alg>/<hex>`.
/// Read-only; `ImageLayoutWriter` writes one. Every blob read here is size- and digest-checked.
public struct ImageLayout: Sendable {
    /// The directory, as given (without a trailing '/').
    public let path: String

    /// Opens a layout, checking `oci-layout` names version 1.0.0.
    public init(path: String) throws {
        let path = ImageLayout.trimmed(path)
        self.path = path
        guard FileIO.exists(path) else { throw OCIError("\(path): no such directory (expected an OCI image layout)") }
        guard FileIO.isDirectory(path) else { throw OCIError("\(path): not a directory (expected an OCI image layout)") }
        try ImageLayout.checkLayoutFile(in: path)
    }

    static let supportedVersion = "1.0.0"

    private struct LayoutFile: Codable { var imageLayoutVersion: String }

    static func checkLayoutFile(in path: String) throws {
        let file = "\(path)/oci-layout"
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(file)
        } catch let error as SystemError where error.code == ENOENT {
            throw OCIError("\(file): missing, so \(path) is not an OCI image layout")
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
        FileIO.exists(blobPath(d))
    }

    /// "blob sha256:… in /x/img", the prefix of every blob error.
    func blobName(_ d: Digest) -> String { "blob \(d) in \(path)" }

    /// Reads a (small) blob whole, after checking its size against the descriptor and its sha256
    /// against the digest. Meant for manifests, indexes and configs; use `verifyBlob` for layers.
    public func readVerifiedBlob(_ d: Descriptor) throws -> [UInt8] {
        let name = blobName(d.digest)
        try d.digest.requireVerifiable(name)
        let fd = try openBlob(d, name: name)
        defer { fd.close() }
        var bytes = [UInt8](repeating: 0, count: Int(d.size))
        let n = try bytes.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in
            try fd.readFully(into: b, at: 0)
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
        let fd = try openBlob(d, name: name)
        defer { fd.close() }
        let hasher = SHA256Hasher()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset: UInt64 = 0
        while true {
            let n = try buffer.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in
                try fd.read(into: b, at: offset)
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

    /// Opens a blob and checks its size on disk before anything is read.
    private func openBlob(_ d: Descriptor, name: String) throws -> FileDescriptor {
        guard d.size >= 0 else { throw OCIError("\(name): descriptor size \(d.size) is negative") }
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
        return fd
    }

    public var indexPath: String { "\(path)/index.json" }

    /// The top-level index.json (not a blob, so not digest-checked).
    public func index() throws -> ImageIndex {
        let file = indexPath
        let bytes: [UInt8]
        do {
            bytes = try FileIO.readAll(file)
        } catch let error as SystemError where error.code == ENOENT {
            throw OCIError("\(file): missing")
        } catch let error as SystemError {
            throw OCIError("\(file): cannot read: \(String(cString: strerror(error.code)))")
        }
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
