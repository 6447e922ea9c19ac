#if canImport(Glibc)
import Glibc
#endif

/// gzip members inflated by isa-l, checkpoints staying zlib's: isa-l does not stop at block
/// boundaries, so once a checkpoint is due it is fed the input in leaps that halve around a header
/// they went past (see `leapStart`), then in `searchChunk`-byte slices, until it stops inside (or
/// right before) a block header, whose bit position then follows from what it holds undecoded. Each such candidate is proven before it is recorded: zlib resumed there (as
/// `SpanDecoder` will) must reproduce isa-l's next `verifyLength` bytes. A member where no boundary
/// is found within `searchLimit` compressed bytes is decoded again by zlib from its last
/// checkpoint and finished by zlib.
extension GzipIndexer {
    func isalStep() throws {
        let isal = isal!
        let state = state, reader = state.reader
        try state.needInput("gzip member")
        state.compactOutput()
        let searching = sinceCheckpoint >= state.spacing && candidate == nil
        if searching && searched >= Self.searchLimit && isal.outputDrained {
            try fallBackToZlib()
            return
        }
        var room = state.out.count - state.outEnd
        if let candidate {
            // Just what the candidate is checked against (one byte more if zlib's output ended).
            room = min(room, max(candidate.expected.count - candidate.matched, 1))
        } else if !searching {
            // Stop where the spacing is reached, so the search starts there.
            room = Int(min(UInt64(room), state.spacing - sinceCheckpoint))
        }
        var inCount = reader.available
        var leaping = false
        if searching {
            // A stored block's end is known: stop exactly there. Elsewhere leaps while they
            // pay, then slices small enough to end inside most dynamic Huffman headers.
            if let left = isal.storedBytesLeft, left > 0 { inCount = min(inCount, left) }
            else if !narrowSearch, !isal.atBlockHeader, IsalInflater.canSave {
                inCount = min(inCount, leap)
                leaping = true
                isal.save()
            } else { inCount = min(inCount, narrowSearch ? Self.narrowChunk : Self.searchChunk) }
        }
        let target = (state.out.baseAddress! + state.outEnd).assumingMemoryBound(to: UInt8.self)
        let step = try isal.inflate(input: reader.bytes, inputCount: inCount, output: target, outputCount: room,
                                    inputOffset: reader.offset)
        if leaping {
            isalStats.leaps += 1
            if isal.codeChangedSinceSave && !isal.atBlockHeader {
                if leap / 2 >= Self.leapMinimum {
                    // A whole header went by: undo the leap, try half of it.
                    isal.restore()
                    leap /= 2
                    bisecting = true
                    return
                }
                // A header shorter than the leaps can stop in: on past it.
                leap = Self.leapStart
                bisecting = false
            } else if bisecting {
                // The header ends in the next half of the last leap.
                leap /= 2
                if leap < Self.leapMinimum { (leap, bisecting) = (Self.leapStart, false) }
            }
        }
        reader.consume(step.consumed)
        if searching {
            searched += UInt64(step.consumed)
            isalStats.sliceCalls += 1
        }
        if step.produced > 0 {
            tookOutput(target, step.produced)
            if candidate != nil { checkCandidate(target, step.produced) }
        }
        state.lastCallFilledOutput = step.produced == room
        if step.ended {
            // isa-l reads whole bytes ahead: give back those of the trailer.
            reader.unconsume(isal.bytesReadPastEnd)
            if let candidate, candidate.streamEnds, candidate.matched == candidate.expected.count {
                commit(candidate.checkpoint)
            } else if candidate != nil {
                reject()
            }
            state.phase = .trailer
            return
        }
        if step.consumed == 0 && step.produced == 0 && inCount > 0 && room > 0 {
            throw CodecError(kind: .corrupt, message: "inflate makes no progress", compressedOffset: reader.offset)
        }
        if searching && isal.atBlockHeader && isal.outputDrained {
            // The next block's header starts this many bits into the blob.
            let bit = reader.offset * 8 - UInt64(isal.undecodedBits)
            try propose(Checkpoint(compressedOffset: (bit + 7) / 8, uncompressedOffset: state.produced,
                                   bits: UInt8((8 - bit % 8) % 8), window: state.currentWindow()))
        }
    }

    /// Whether the search has gone on long enough for narrow slices (see `searchChunk`):
    /// `narrowAfter` compressed bytes, or half a spacing of output (data that compresses well
    /// has short block headers, and a boundary missed there costs much output).
    private var narrowSearch: Bool {
        searched >= Self.narrowAfter || sinceCheckpoint - state.spacing >= state.spacing / 2
    }

    /// Starts proving a boundary: zlib's output from it, to compare with isa-l's next bytes.
    private func propose(_ checkpoint: Checkpoint) throws {
        let reader = state.reader
        isalStats.candidates += 1
        _ = try reader.fill(atLeast: 64 << 10)   // input for zlib (less at the end of the blob)
        guard let input = reader.pointer(at: checkpoint.compressedOffset),
              checkpoint.bits == 0 || checkpoint.compressedOffset > 0 else {
            isalStats.rejected += 1
            return
        }
        var byteBefore: UInt8 = 0
        if checkpoint.bits > 0 {
            guard let before = reader.pointer(at: checkpoint.compressedOffset - 1) else {
                isalStats.rejected += 1
                return
            }
            byteBefore = before[0]
        }
        let checker = try self.checker ?? Inflater(at: checkpoint.compressedOffset)
        self.checker = checker
        var expected = [UInt8](repeating: 0, count: Self.verifyLength)
        let step: CodecStep
        do {
            try checker.prime(at: checkpoint, byteBefore: byteBefore)
            step = try expected.withUnsafeMutableBufferPointer {
                try checker.step(input: input, inputCount: Int(reader.readOffset - checkpoint.compressedOffset),
                                 output: $0.baseAddress!, outputCount: $0.count, inputOffset: checkpoint.compressedOffset)
            }
        } catch {
            isalStats.rejected += 1
            return
        }
        // A boundary where nothing follows (before an empty last block) would be a checkpoint without bytes.
        guard step.produced > 0 else {
            isalStats.rejected += 1
            return
        }
        expected.removeSubrange(step.produced...)
        candidate = Candidate(checkpoint: checkpoint, expected: expected, streamEnds: step.ended)
    }

    /// Compares isa-l's new output with the candidate's zlib output.
    private func checkCandidate(_ bytes: UnsafePointer<UInt8>, _ count: Int) {
        guard var c = candidate else { return }
        let n = min(count, c.expected.count - c.matched)
        let equal = c.expected.withUnsafeBytes { memcmp($0.baseAddress! + c.matched, bytes, n) == 0 }
        guard equal, n == count || !c.streamEnds else {
            reject()
            return
        }
        c.matched += n
        if c.matched == c.expected.count && !c.streamEnds {
            commit(c.checkpoint)
        } else {
            candidate = c
        }
    }

    private func commit(_ checkpoint: Checkpoint) {
        state.checkpoints.append(checkpoint)
        sinceCheckpoint = state.produced - checkpoint.uncompressedOffset
        candidate = nil
        searched = 0
        leap = Self.leapStart
        bisecting = false
    }

    private func reject() {
        candidate = nil
        isalStats.rejected += 1
    }

    /// No boundary found: zlib decodes the member again from its last checkpoint (dropping
    /// what isa-l already gave) and takes over. Called with isa-l's output drained, so isa-l
    /// is no more than its read-ahead (< `BlobReader.history`) past zlib's input.
    private func fallBackToZlib() throws {
        let reader = state.reader, produced = state.produced
        isalStats.fallbacks += 1
        candidate = nil
        searched = 0
        let from = state.checkpoints.last!   // this member's: it has produced bytes since its start
        let start = from.compressedOffset
        let inflater = try self.inflater ?? Inflater(at: start)
        self.inflater = inflater
        let chunk = 64 << 10
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * chunk, alignment: 16)
        defer { buffer.deallocate() }
        let input = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<chunk])
        let output = (buffer.baseAddress! + chunk).assumingMemoryBound(to: UInt8.self)
        var byteBefore: UInt8 = 0
        if from.bits > 0 {
            let one = UnsafeMutableRawBufferPointer(rebasing: input[0..<1])
            guard try reader.reread(into: one, at: start - 1) == 1 else { throw state.truncated("gzip member") }
            byteBefore = input[0]
        }
        try inflater.prime(at: from, byteBefore: byteBefore)
        var inPos = start
        var outPos = from.uncompressedOffset
        while outPos < produced {
            let source: UnsafePointer<UInt8>
            let available: Int
            let fromReader = inPos >= reader.offset
            if fromReader {
                if reader.available == 0 {
                    guard try reader.fill(atLeast: 1) else { throw state.truncated("gzip member") }
                }
                source = UnsafePointer(reader.bytes)
                available = reader.available
            } else {
                let want = Int(min(UInt64(chunk), reader.offset - inPos))
                let n = try reader.reread(into: UnsafeMutableRawBufferPointer(rebasing: input[0..<want]), at: inPos)
                guard n > 0 else { throw state.truncated("gzip member") }
                source = UnsafePointer(input.baseAddress!.assumingMemoryBound(to: UInt8.self))
                available = n
            }
            var used = 0
            while used < available && outPos < produced {
                let step = try inflater.step(input: source + used, inputCount: available - used, output: output,
                                             outputCount: Int(min(UInt64(chunk), produced - outPos)),
                                             inputOffset: inPos + UInt64(used))
                used += step.consumed
                outPos += UInt64(step.produced)
                if step.ended && outPos < produced || step.consumed == 0 && step.produced == 0 {
                    throw CodecError(kind: .corrupt, message: "zlib and isa-l disagree", compressedOffset: inPos + UInt64(used))
                }
            }
            if fromReader { reader.consume(used) }
            inPos += UInt64(used)
        }
        if inPos < reader.offset {
            let back = reader.offset - inPos
            guard back <= UInt64(BlobReader.history) else {
                throw CodecError(kind: .corrupt, message: "zlib and isa-l disagree", compressedOffset: inPos)
            }
            reader.unconsume(Int(back))
        }
        engine = .zlib
        state.lastCallFilledOutput = true   // zlib may hold output it has not given yet
    }
}
