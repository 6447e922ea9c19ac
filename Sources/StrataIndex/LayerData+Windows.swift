import StrataCodec

/// Checkpoint windows of an index installed without them (a published index: see
/// `IndexWindows`). A missing window is fetched from where the index was published, unless
/// the span before its checkpoint is here or coming: then its last bytes, decoded, are the
/// window. The prefetch of a run of neighbouring spans fetches the first one's window only
/// (`IndexWindowPrefetch`), so a start that reads a run of small files no longer pays a
/// fetched window (about 15 KiB) for each span of it.
extension LayerData {
    /// How many spans back a window is made through (each costs one span's decode, about a
    /// millisecond); past that it is fetched.
    public static let windowDerivationDepth = 8

    /// Checkpoint `i` with its window, made from the span before when it can be (see the type).
    /// `purpose`: what the decode needing it is (the span before counts as read for it).
    func checkpointWithWindow(_ i: Int, index: LayerIndex, purpose: FetchPurpose = .demand) throws -> Checkpoint {
        guard let lazy = blob.lazy else { return try index.checkpoint(i) }
        return try index.checkpoint(i) { [self] i in
            guard canDeriveWindow(i, index: index, lazy: lazy, depth: Self.windowDerivationDepth) else { return nil }
            // A window that cannot be made (a request failed, a span did not match) is fetched.
            return try? deriveWindow(i, index: index, purpose: purpose)
        }
    }

    /// Whether window `i` can be made from span `i - 1`: that span holds the whole window, its
    /// compressed bytes are here or being fetched, and its own window is in the file or can be
    /// made in turn.
    private func canDeriveWindow(_ i: Int, index: LayerIndex, lazy: LazyBlob, depth: Int) -> Bool {
        guard depth > 0, index.windowLiesInSpanBefore(i) else { return false }
        guard lazy.isPresentOrComing(index.spanRange(index.span(forCheckpoint: i - 1))) else { return false }
        return !index.windowMissing(i - 1) || canDeriveWindow(i - 1, index: index, lazy: lazy, depth: depth - 1)
    }

    /// Decodes span `i - 1` (verified first, as every decode) and installs its last bytes as
    /// checkpoint `i`'s window; the index's checksum for that window decides (`installWindow`).
    /// Returns the window as stored.
    private func deriveWindow(_ i: Int, index: LayerIndex, purpose: FetchPurpose) throws -> [UInt8] {
        let from = try checkpointWithWindow(i - 1, index: index, purpose: purpose)
        let (compressed, j) = try compressedSpan(i - 1, index: index, purpose: purpose)
        try verify(span: j, UnsafeRawBufferPointer(compressed.bytes), index: index)
        let count = Int(index.checkpointOffsets(i).uncompressed - from.uncompressedOffset)
        let decoder = LayerData.decoders.take(index.compression)
        defer { LayerData.decoders.give(decoder, index.compression) }
        try decoder.begin(blob: compressed.blob, from: from)
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: count, alignment: 16)
        defer { out.deallocate() }
        let n = try decoder.decodeMore(into: out)
        guard n == count else { throw IndexError("\(blob.name): span \(i - 1) decoded to \(n) bytes, expected \(count)") }
        let length = index.windowLength(i)
        let window = try sparse([UInt8](UnsafeRawBufferPointer(rebasing: out[(count - length)..<count])), checkpoint: i,
                                index: index, purpose: purpose)
        guard let stored = index.installWindow(i, window) else {
            throw IndexError("\(blob.name): window of checkpoint \(i) made from span \(i - 1) does not match its checksum")
        }
        return stored
    }

    /// `window` as the index stores it (`SparseWindow`), from span `i`'s bytes: the decode
    /// needing the window fetches that span anyway, and verifies it then. Here its bytes only
    /// choose which window bytes to keep, and the result must match the index's checksum:
    /// bytes that changed could only make it fail, and the window is then fetched. So is one
    /// from a span too short to tell (a spacing below 32 KiB), left whole.
    private func sparse(_ window: [UInt8], checkpoint i: Int, index: LayerIndex, purpose: FetchPurpose) throws -> [UInt8] {
        let (next, _) = try compressedSpan(i, index: index, purpose: purpose)
        let offset = index.checkpointOffsets(i).compressed
        let bits = index.checkpointBits(i)
        var byteBefore: UInt8 = 0
        if bits > 0 {
            guard offset > 0, let before = next.blob.bytesInMemory(from: offset - 1) else { return window }
            byteBefore = before[0]
        }
        let checkpoint = Checkpoint(compressedOffset: offset, uncompressedOffset: index.checkpointOffsets(i).uncompressed,
                                    bits: bits, window: window)
        return SparseWindow.sparse(checkpoint, byteBefore: byteBefore, read: { try next.blob.read(into: $0, at: $1) }) ?? window
    }
}
