#if canImport(Glibc)
import Glibc
#endif
import StrataHash
import StrataOCI
import StrataSystem

/// A blob being written: a temporary file in the layout's `blobs/sha256`, renamed to its digest
/// only once complete and synced, so `blobs/sha256/<hex>` is never a partial file. A temporary
/// left by a killed commit is named `.tmp.commit.*` and referenced by nothing.
struct BlobFile {
    let path: String
    let fd: FileDescriptor

    static func create(layout: String) throws -> BlobFile {
        let dir = "\(layout)/blobs/sha256"
        let path = "\(dir)/.tmp.commit.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        do {
            try FileIO.makeDirectories(dir)
            return BlobFile(path: path, fd: try FileDescriptor.open(path, O_RDWR | O_CREAT | O_EXCL, mode: 0o644))
        } catch {
            throw CommitError("\(layout): cannot create a temporary blob", wrapping: error)
        }
    }

    /// Drops the temporary (after a failure, or when the blob is not wanted).
    func discard() {
        fd.close()
        try? FileDescriptor.currentDirectory.unlink(at: path)
    }

    /// Syncs, hashes (reading the file back: the compressor writes straight to the file) and
    /// renames the file to its digest. An existing blob of that digest and size is kept as is.
    func adopt(mediaType: String) throws -> Descriptor {
        let hasher = SHA256Hasher()
        var size: UInt64 = 0
        do {
            try fd.sync()
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
        fd.close()
        let digest = Digest(sha256Hex: hasher.finalizeHex())
        let final = "\(path.prefix(upTo: path.lastIndex(of: "/")!))/\(digest.hex)"
        let here = FileDescriptor.currentDirectory
        if let st = try? here.stat(at: final, flags: 0), (st.st_mode & S_IFMT) == S_IFREG, UInt64(st.st_size) == size {
            try? here.unlink(at: path)
        } else {
            do { try here.rename(at: path, to: here, final) } catch {
                try? here.unlink(at: path)
                throw CommitError("blob \(digest): cannot rename \(path) into place", cause: error)
            }
            FileIO.syncDirectory(of: final)
        }
        return Descriptor(mediaType: mediaType, digest: digest, size: Int64(size))
    }
}
