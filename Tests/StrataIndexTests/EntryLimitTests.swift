import Testing
import Glibc
import StrataSystem
import StrataTar
@testable import StrataIndex

/// A path of exactly `length` bytes made of valid names: "d…/d…/…/f…" (99-byte directories).
func longPath(_ length: Int, leaf: Character = "f") -> String {
    let directories = (length - 1) / 100
    let dirs = (0..<directories).map { String($0 % 10) + String(repeating: "d", count: 98) }
    return (dirs + [String(repeating: leaf, count: length - directories * 100)]).joined(separator: "/")
}

/// What the kernel can hold (issue 10, points 8 and 9): names of at most 255 bytes, paths and
/// link targets of at most 4095, symlinks of mode 0777.
@Suite struct EntryLimitTests {
    /// Indexes `entries` (a plain tar) and returns the index, or the error's text.
    func index(_ entries: [TarEntry]) throws -> Result<LayerIndex, IndexError> {
        let s = Scratch()
        let blob = try s.blob(try TarWriter.archive(entries.map { ($0, []) }), .none)
        do {
            let bytes = try IndexBuilder.build(blob)
            try FileIO.writeAtomically("\(s.path)/idx", bytes)
            return .success(try LayerIndex(path: "\(s.path)/idx"))
        } catch let e as IndexError {
            return .failure(e)
        }
    }

    func refusal(_ entries: [TarEntry]) throws -> String? {
        if case .failure(let e) = try index(entries) { return "\(e)" }
        return nil
    }

    @Test func longPathHelperIsExact() {
        for n in [300, 4095, 4096, 4097] {
            #expect(longPath(n).utf8.count == n)
            #expect(longPath(n).split(separator: "/").allSatisfy { $0.utf8.count <= 255 })
        }
    }

    @Test func nameOf255BytesIsKept() throws {
        let name = String(repeating: "n", count: 255)
        let idx = try index([entry("d/" + name), entry(name, .symlink, link: "x")]).get()
        #expect(idx.entryCount == 2)
        #expect(Array(idx.entry(0).name) == Array(name.utf8))
    }

    @Test func nameOf256BytesIsRefusedInOneReadableLine() throws {
        let name = String(repeating: "n", count: 256)
        let why = try #require(try refusal([entry("ok"), entry("dir/" + name)]))
        #expect(why.contains("NAME_MAX") && why.contains("(256 bytes)"), "\(why)")
        #expect(why.contains("dir/" + String(repeating: "n", count: 60)) && !why.contains(name), "\(why)")
        #expect(!why.contains("\n") && why.utf8.count < 400, "\(why)")
        // A directory name, too, and one only a directory entry names ("long/").
        #expect(try refusal([entry(name + "/f")])?.contains("NAME_MAX") == true)
        #expect(try refusal([entry(name + "/", .directory)])?.contains("NAME_MAX") == true)
    }

    @Test func pathOf4095BytesIsKept4096Refused() throws {
        let idx = try index([entry(longPath(4095))]).get()
        #expect(idx.entry(0).path.count == 4095)
        // "./" and a trailing "/" are not part of the path the kernel sees.
        #expect(try refusal([entry("./" + longPath(4095, leaf: "d") + "/", .directory)]) == nil)
        for n in [4096, 4097] {
            let why = try #require(try refusal([entry(longPath(n))]))
            #expect(why.contains("path of \(n) bytes") && why.contains("PATH_MAX") && why.contains("…(\(n) bytes)"), "\(why)")
        }
    }

    @Test func linkTargetsFollowTheSameRules() throws {
        // A symlink target is not a path of the image: only its length counts.
        let ok = String(repeating: "t", count: 4095)
        #expect(try index([entry("l", .symlink, link: ok)]).get().entry(0).linkTarget.count == 4095)
        let why = try #require(try refusal([entry("l", .symlink, link: ok + "t")]))
        #expect(why.contains("symlink target of 4096 bytes"), "\(why)")
        // A hardlink target names an entry: the path rules.
        let long = String(repeating: "h", count: 256)
        #expect(try refusal([entry("h", .hardlink, link: long)])?.contains("hardlink target: name") == true)
        #expect(try refusal([entry("h", .hardlink, link: longPath(4096))])?.contains("hardlink target: path") == true)
    }

    @Test func whiteoutOfALongestNameIsKept() throws {
        // ".wh." + 255 bytes is 259 bytes in the tar, but hides a name Linux can hold.
        let name = String(repeating: "w", count: 255)
        let idx = try index([entry("d/.wh." + name)]).get()
        #expect(idx.entry(0).kind == .whiteout && idx.entry(0).path.count == 2 + 255)
        #expect(try refusal([entry("d/.wh." + name + "w")])?.contains("NAME_MAX") == true)
    }

    @Test func symlinksRead0777WhateverTheirHeaderSays() throws {
        let idx = try index([entry("l", .symlink, link: "x", mode: 0o644), entry("f", mode: 0o640)]).get()
        #expect(idx.entry(0).mode == 0o777)
        #expect(idx.entry(1).mode == 0o640)
    }
}
