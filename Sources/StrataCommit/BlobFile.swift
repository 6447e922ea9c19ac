#if canImport(Glibc)
import Glibc
#endif
import StrataHash
import StrataOCI
import StrataSystem

/// A blob being written: a temporary file (`AtomicFile`) in the layout's `blobs/sha256`, renamed
/// to its digest only once complete and synced, so `blobs/sha256/<hex>` is never a partial file.
/// A temporary left by a killed commit is named `.tmp.commit.*` and referenced by nothing.
struct BlobFile {
    let file: AtomicFile
    var path: String { file.temporaryPath }
    var fd: FileDescriptor { file.descriptor }

    static func create(layout: String) throws -> BlobFile {
        let dir = "\(layout)/blobs/sha256"
        do {
            try FileIO.makeDirectories(dir)
            return BlobFile(file: try AtomicFile(temporaryPath: AtomicFile.temporaryPath(in: dir, prefix: ".tmp.commit."),
                                                 readable: true))
        } catch {
            throw CommitError("\(layout): cannot create a temporary blob", wrapping: error)
        }
    }

    /// Drops the temporary (after a failure, or when the blob is not wanted).
    func discard() {
        file.discard()
    }

    /// Syncs, hashes (reading the file back: the compressor writes straight to the file) and
    /// renames the file to its digest. An existing blob of that digest and size is kept as is.
    func adopt(mediaType: String) throws -> Descriptor {
        let hasher = SHA256Hasher()
        var size: UInt64 = 0
        do {
            var buffer = [UInt8](repeating: 0, count: 1 << 20)
            while true {
                let n = try buffer.withUnsafeMutableBytes { try fd.read(into: $0, at: size) }
                if n == 0 { break }
                buffer.withUnsafeBytes { hasher.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
                size += UInt64(n)
            }
        } catch {
            discard()
            throw CommitError("\(path): cannot finish the blob", wrapping: error)
        }
        let digest = Digest(sha256Hex: hasher.finalizeHex())
        let final = "\(path.prefix(upTo: path.lastIndex(of: "/")!))/\(digest.hex)"
        if let st = try? FileDescriptor.currentDirectory.stat(at: final, flags: 0), (st.st_mode & S_IFMT) == S_IFREG,
           UInt64(st.st_size) == size {
            discard()
            return Descriptor(mediaType: mediaType, digest: digest, size: Int64(size))
        }
        do { try file.commit(as: final, durable: true) } catch {
            throw CommitError("blob \(digest): cannot put \(path) in place: \(error)")
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: Int64(size))
    }
}
