#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import StrataHash
import StrataSystem

/// Writes an OCI image layout: content-addressed blobs and index.json entries. Every file is
/// replaced by rename, so a reader never sees a partial blob or index.json; index.json updates
/// are serialised by flock(2) on the layout directory, so concurrent writers do not lose entries.
public struct ImageLayoutWriter: Sendable {
    public let path: String

    /// Creates the layout (directory, `oci-layout`, empty `index.json`) when missing, and reuses
    /// an existing one. A non-empty directory that is not a layout is refused rather than littered.
    public init(path: String) throws {
        let path = ImageLayout.trimmed(path)
        self.path = path
        do {
            if !FileIO.exists(path) {
                try FileIO.makeDirectories(path)
            } else if !FileIO.isDirectory(path) {
                throw OCIError("\(path): not a directory, cannot write an OCI image layout there")
            }
            let layoutFile = "\(path)/oci-layout"
            if FileIO.exists(layoutFile) {
                try ImageLayout.checkLayoutFile(in: path)
            } else {
                guard try ImageLayoutWriter.isEmptyDirectory(path) else {
                    throw OCIError("\(path): not empty and has no oci-layout file; refusing to make it an OCI image layout")
                }
                try FileIO.writeAtomically(layoutFile, Array(#"{"imageLayoutVersion":"1.0.0"}"#.utf8))
            }
            try FileIO.makeDirectories("\(path)/blobs/sha256")
            // Under the lock, so a concurrent writer's first tag is not overwritten.
            try withIndexLock {
                if !FileIO.exists("\(path)/index.json") { try writeIndex(ImageIndex()) }
            }
        } catch let error as SystemError {
            throw OCIError("\(path): cannot create the image layout: \(error)")
        }
    }

    /// The layout as a reader sees it.
    public var layout: ImageLayout { get throws { try ImageLayout(path: path) } }

    private func blobPath(_ d: Digest) -> String { "\(path)/blobs/\(d.algorithm)/\(d.hex)" }

    /// Stores `bytes` as a blob; an existing blob of that digest and size is kept as is.
    @discardableResult
    public func writeBlob(_ bytes: [UInt8], mediaType: String) throws -> Descriptor {
        let digest = Digest.sha256(of: bytes)
        let descriptor = Descriptor(mediaType: mediaType, digest: digest, size: Int64(bytes.count))
        let file = blobPath(digest)
        if ImageLayoutWriter.fileSize(file) == Int64(bytes.count) { return descriptor }
        do {
            try FileIO.writeAtomically(file, bytes)
        } catch {
            throw OCIError("blob \(digest) in \(path): cannot write \(file): \(error)")
        }
        return descriptor
    }

    /// Stores a file's content as a blob in one pass: copied into a temporary file in the blob
    /// directory while hashed, then renamed to its digest (or dropped if that blob exists).
    @discardableResult
    /// `range` (offset, length): only those bytes of the file (a member of an image archive).
    public func writeBlob(fromFile source: String, mediaType: String, range: (UInt64, UInt64)? = nil) throws -> Descriptor {
        let input: FileDescriptor
        do {
            input = try FileDescriptor.open(source, O_RDONLY)
        } catch {
            throw OCIError("\(source): cannot open: \(error)")
        }
        defer { input.close() }
        let output: AtomicFile
        do {
            output = try AtomicFile(temporaryPath: AtomicFile.temporaryPath(in: "\(path)/blobs/sha256"))
        } catch {
            throw OCIError("\(path): cannot create a temporary blob: \(error)")
        }
        let hasher = SHA256Hasher()
        var size: Int64 = 0
        do {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            var position = range?.0 ?? 0
            let end = range.map { $0.0 + $0.1 }
            while end.map({ position < $0 }) ?? true {
                let want = end.map { Int(min(UInt64(buffer.count), $0 - position)) } ?? buffer.count
                let n = try buffer.withUnsafeMutableBytes { (b: UnsafeMutableRawBufferPointer) throws in
                    try input.read(into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]), at: position)
                }
                if n == 0 {
                    if end != nil { throw OCIError("\(source): ends at \(position), inside the blob at offset \(range!.0)") }
                    break
                }
                position += UInt64(n)
                try buffer.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws in
                    let chunk = UnsafeRawBufferPointer(rebasing: b[0..<n])
                    hasher.update(chunk)
                    try output.write(chunk)
                }
                size += Int64(n)
            }
        } catch {
            output.discard()
            throw OCIError("\(source): cannot copy into \(path): \(error)")
        }
        let digest = Digest(sha256Hex: hasher.finalizeHex())
        let file = blobPath(digest)
        if ImageLayoutWriter.fileSize(file) == size {
            output.discard()
        } else {
            do { try output.commit(as: file, durable: true) } catch {
                throw OCIError("blob \(digest) in \(path): cannot put in place: \(error)")
            }
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: size)
    }

    /// Encodes `value` deterministically (sorted keys, unescaped '/') and stores it as a blob.
    @discardableResult
    public func writeJSON<T: Encodable>(_ value: T, mediaType: String) throws -> Descriptor {
        try writeBlob(try JSONCoding.encode(value), mediaType: mediaType)
    }

    /// Points tag `name` at `d` in index.json: the entry already carrying that
    /// `org.opencontainers.image.ref.name` is replaced in place, otherwise one is appended.
    public func tag(_ d: Descriptor, as name: String) throws {
        guard !name.isEmpty, !name.contains(where: \.isNewline) else {
            throw OCIError("\(path): invalid tag \"\(name)\"")
        }
        var entry = d
        entry.annotations = (d.annotations ?? [:]).merging([MediaType.refNameAnnotation: name]) { $1 }
        try updateIndex { index in
            if let first = index.manifests.firstIndex(where: { $0.refName == name }) {
                index.manifests[first] = entry
                var i = index.manifests.count - 1
                while i > first {
                    if index.manifests[i].refName == name { index.manifests.remove(at: i) }
                    i -= 1
                }
            } else {
                index.manifests.append(entry)
            }
        }
    }

    /// Appends `d` to index.json unless an identical entry is there already.
    public func addToIndex(_ d: Descriptor) throws {
        try updateIndex { index in
            if !index.manifests.contains(d) { index.manifests.append(d) }
        }
    }

    /// Read-modify-write of index.json under an exclusive lock on the layout directory.
    /// Keys of index.json this module does not model are not preserved.
    private func updateIndex(_ change: (inout ImageIndex) throws -> Void) throws {
        try withIndexLock {
            var index = try ImageLayout(path: path).index()
            try change(&index)
            try writeIndex(index)
        }
    }

    private func withIndexLock(_ body: () throws -> Void) throws {
        let dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dir >= 0 else {
            throw OCIError("\(path): cannot open to lock index.json: \(String(cString: strerror(errno)))")
        }
        defer { close(dir) }
        while flock(dir, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw OCIError("\(path): cannot lock index.json: \(String(cString: strerror(errno)))")
            }
        }
        try body()
    }

    private func writeIndex(_ index: ImageIndex) throws {
        let file = "\(path)/index.json"
        do {
            try FileIO.writeAtomically(file, try JSONCoding.encode(index))
        } catch let error as SystemError {
            throw OCIError("\(file): cannot write: \(error)")
        }
    }

    static func fileSize(_ file: String) -> Int64? {
        var st = stat()
        guard stat(file, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return nil }
        return Int64(st.st_size)
    }

    static func isEmptyDirectory(_ path: String) throws -> Bool {
        guard let dir = opendir(path) else { throw SystemError(code: errno, operation: "opendir", path: path) }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { return false }
        }
        return true
    }
}
