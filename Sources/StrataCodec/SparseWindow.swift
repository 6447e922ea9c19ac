/// A checkpoint's window with only the bytes kept that decoding from the checkpoint reads.
///
/// Deflate refers back at most 32 KiB, so of a checkpoint's window only the bytes that the
/// first 32 KiB of output after it copy (directly, or through copies of copies, which lead back
/// to one of those) are ever read. Which bytes those are depends on the compressed stream
/// alone, not on the window's contents. Every other byte is stored as zero: a window then
/// deflates to a fifth to a third of its size, and decoding from it gives the same bytes.
///
/// The positions are found by decoding that output twice with marker windows: in the first
/// each byte holds its position's low byte, in the second its high byte with the top bit set.
/// An output byte that differs between the two came from the window, and the two values name
/// the position. A byte equal in both may still be one (the 128 positions whose two markers
/// agree): it is kept when its value names such a position. Keeping a byte that is not read
/// costs only size; a byte read but zeroed would change what is served, so this errs one way.
///
/// The same checkpoint always gives the same sparse window, so an index derived again from the
/// blob matches byte for byte, and a window made from the span before (`LayerData`) is made
/// sparse the same way before it is compared with the index's checksum.
public enum SparseWindow {
    /// The output after a checkpoint that can refer to its window.
    static let reach = 32 << 10
    static let readChunk = 64 << 10

    /// pread-like: blob bytes at an offset into the buffer; 0 where the readable bytes end.
    public typealias Read = (UnsafeMutableRawBufferPointer, UInt64) throws -> Int

    /// `checkpoint.window` made sparse (see the type), reading the compressed bytes from the
    /// checkpoint on with `read`. nil when they end before the first 32 KiB of output, or the
    /// stream's end, is decoded (`read` covers too little), or they do not decode.
    public static func sparse(_ checkpoint: Checkpoint, byteBefore: UInt8, read: Read) -> [UInt8]? {
        Maker().sparse(checkpoint, byteBefore: byteBefore, read: read)
    }

    /// Marker windows (the longest; a shorter window uses their first bytes).
    static let lowMarkers: [UInt8] = (0..<reach).map { UInt8(truncatingIfNeeded: $0) }
    static let highMarkers: [UInt8] = (0..<reach).map { UInt8($0 >> 8) | 0x80 }

    /// Makes windows sparse one after another with the same two decoders and buffers: the
    /// indexer makes one per checkpoint, and a decoder's state alone is 85 KiB to set up.
    public final class Maker {
        private let decoders = (IsalInflater(), IsalInflater())
        private let output = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 2 * SparseWindow.reach)
        private let input = UnsafeMutableRawBufferPointer.allocate(byteCount: SparseWindow.readChunk, alignment: 16)

        public init() {}

        deinit {
            output.deallocate()
            input.deallocate()
        }

        /// See `SparseWindow.sparse`.
        public func sparse(_ checkpoint: Checkpoint, byteBefore: UInt8, read: Read) -> [UInt8]? {
            let window = checkpoint.window
            guard !window.isEmpty, window.count <= reach else { return window.isEmpty ? window : nil }
            guard let produced = decode(checkpoint, byteBefore: byteBefore, read: read) else { return nil }
            let low = UnsafeBufferPointer(rebasing: output[0..<produced])
            let high = UnsafeBufferPointer(rebasing: output[reach..<(reach + produced)])
            var kept = [UInt8](repeating: 0, count: window.count)
            let valid = kept.withUnsafeMutableBufferPointer { kept in
                window.withUnsafeBufferPointer { window in
                    for o in 0..<produced {
                        let a = low[o], b = high[o]
                        guard b & 0x80 != 0 else {
                            guard a == b else { return false }   // from the window, b has its top bit:
                            continue                             // cannot be a literal
                        }
                        // a ≠ b: from the window, at this position. a = b: maybe one of the
                        // positions whose markers agree (or a literal that looks like one: kept,
                        // harmless).
                        let position = Int(b & 0x7f) << 8 | Int(a)
                        guard position < window.count else {
                            if a == b { continue }
                            return false
                        }
                        kept[position] = window[position]
                    }
                    return true
                }
            }
            return valid ? kept : nil
        }

        /// Decodes the first `reach` bytes from the checkpoint with each marker window into
        /// `output` (fewer where the deflate stream ends), the input read once for both.
        /// Returns how many; nil when the input ends first or does not decode.
        private func decode(_ checkpoint: Checkpoint, byteBefore: UInt8, read: Read) -> Int? {
            let runs = [decoders.0, decoders.1]
            var produced = [0, 0]
            var ended = [false, false]
            var offset = checkpoint.compressedOffset
            let count = checkpoint.window.count
            do {
                try lowMarkers.withUnsafeBufferPointer {
                    try runs[0].prime(at: checkpoint, byteBefore: byteBefore, window: UnsafeBufferPointer(rebasing: $0[0..<count]))
                }
                try highMarkers.withUnsafeBufferPointer {
                    try runs[1].prime(at: checkpoint, byteBefore: byteBefore, window: UnsafeBufferPointer(rebasing: $0[0..<count]))
                }
                func done(_ k: Int) -> Bool { ended[k] || produced[k] == reach }
                while !done(0) || !done(1) {
                    let n = try read(input, offset)
                    if n == 0 { return nil }
                    for k in 0..<2 where !done(k) {
                        // Each run takes the whole chunk (isa-l keeps what it cannot decode yet).
                        var used = 0
                        while used < n && !done(k) {
                            let step = try runs[k].step(input: (input.baseAddress! + used).assumingMemoryBound(to: UInt8.self),
                                                        inputCount: n - used, output: output.baseAddress! + k * reach + produced[k],
                                                        outputCount: reach - produced[k], inputOffset: offset + UInt64(used))
                            used += step.consumed
                            produced[k] += step.produced
                            ended[k] = step.ended
                            if step.consumed == 0 && step.produced == 0 && !step.ended { return nil }
                        }
                    }
                    offset += UInt64(n)
                }
            } catch {
                return nil
            }
            // The same stream gives both runs the same length; anything else is not a window's use.
            return produced[0] == produced[1] ? produced[0] : nil
        }
    }
}
