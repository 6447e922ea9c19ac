import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import StrataTar

/// Archives made by GNU tar and bsdtar on this machine, read back and compared with the files.
@Suite(.serialized) struct RealToolTests {
    static let nonUTF8Name: [UInt8] = Array("./caf".utf8) + [0xe9]
    static let longDir = (0..<3).map { String(repeating: Character(UnicodeScalar(UInt8(0x61 + $0))), count: 90) }.joined(separator: "/")
    static let longFile = longDir + "/" + String(repeating: "f", count: 150)
    static let longTarget = String(repeating: "t", count: 180)

    /// A tree with the basics every format stores; `extended` adds what needs GNU/PAX.
    private func makeTree(_ dir: TempDir, extended: Bool) throws {
        let root = dir.file("root")
        var script = """
        set -e
        mkdir -p '\(root)/dir/sub' && cd '\(root)'
        printf 'hello, world\\n' > a.txt
        head -c 1500 /dev/urandom > dir/b.bin
        ln -s a.txt link
        ln a.txt hard
        touch -d @1700000000.123456789 a.txt
        """
        if extended {
            script += """

            mkdir -p '\(Self.longDir)'
            head -c 3000 /dev/urandom > '\(Self.longFile)'
            ln -s '\(Self.longTarget)' longlink
            mkfifo fifo
            touch "$(printf 'caf\\351')"
            """
        }
        let r = try run(["sh", "-c", script])
        try #require(r.status == 0, "\(r.stderr)")
    }

    /// Checks every entry against the file it came from.
    private func verify(_ archive: [UInt8], root: String, extended: Bool, format: String) throws -> [TarEntry] {
        let read = try readAll(archive)
        var byPath: [String: TarEntry] = [:]
        for (entry, data) in read {
            #expect(entry.storedSize == UInt64(data.count))
            let start = Int(entry.dataOffset)
            #expect(Array(archive[start..<(start + data.count)]) == data)
            if entry.path == Self.nonUTF8Name { continue }
            var rel = entry.pathString
            if rel.hasPrefix("./") { rel.removeFirst(2) }
            if rel.hasSuffix("/") { rel.removeLast() }
            byPath[rel] = entry
            let local = root + "/" + rel
            switch entry.type {
            case .regular:
                #expect(data == (try readFile(local)), "\(format) \(rel)")
            case .symlink:
                #expect(entry.linkTargetString == (try FileManager.default.destinationOfSymbolicLink(atPath: local)))
            case .directory:
                var isDir: ObjCBool = false
                #expect(FileManager.default.fileExists(atPath: local, isDirectory: &isDir) && isDir.boolValue)
            default: break
            }
        }
        for rel in ["", "a.txt", "dir", "dir/b.bin", "dir/sub", "link", "hard"] {
            #expect(byPath[rel] != nil, "\(format): missing \(rel)")
        }
        // One of the two names is stored as a hard link to the other, as archived.
        let links = [byPath["a.txt"], byPath["hard"]].compactMap { $0 }.filter { $0.type == .hardlink }
        #expect(links.count == 1)
        if let link = links.first {
            #expect([bytes("./a.txt"), bytes("./hard")].contains(link.linkTarget))
        }
        #expect(byPath["a.txt"]?.mtimeSeconds == 1_700_000_000)
        if extended {
            #expect(byPath[Self.longFile]?.type == .regular)
            #expect(byPath["longlink"]?.linkTargetString == Self.longTarget)
            #expect(byPath["fifo"]?.type == .fifo)
            #expect(read.contains { $0.0.path == Self.nonUTF8Name }, "\(format): non-UTF-8 name")
        }
        return read.map(\.0)
    }

    @Test(arguments: ["gnu", "posix", "ustar", "v7", "oldgnu"])
    func gnuTar(format: String) throws {
        let dir = try TempDir()
        let extended = format == "gnu" || format == "posix" || format == "oldgnu"
        try makeTree(dir, extended: extended)
        let out = dir.file("out.tar")
        let r = try run(["tar", "--format=\(format)", "-cf", out, "-C", dir.file("root"), "."])
        try #require(r.status == 0, "\(r.stderr)")
        let entries = try verify(try readFile(out), root: dir.file("root"), extended: extended, format: format)
        if format == "posix" {
            #expect(entries.first { $0.pathString == "./a.txt" }?.mtimeNanoseconds == 123_456_789)
        }
    }

    @Test func gnuTarXattrs() throws {
        let dir = try TempDir()
        try makeTree(dir, extended: false)
        let file = dir.file("root/dir/b.bin")
        var r = try run(["setfattr", "-n", "user.strata", "-v", "value with spaces", file])
        try #require(r.status == 0, "\(r.stderr)")
        let out = dir.file("out.tar")
        r = try run(["tar", "--format=posix", "--xattrs", "--xattrs-include=*", "-cf", out, "-C", dir.file("root"), "."])
        try #require(r.status == 0, "\(r.stderr)")
        let entries = try verify(try readFile(out), root: dir.file("root"), extended: false, format: "posix+xattrs")
        let entry = try #require(entries.first { $0.pathString == "./dir/b.bin" })
        #expect(entry.xattrs.contains(TarXattr(name: "user.strata", value: bytes("value with spaces"))))
    }

    /// A file capability (security.capability) as GNU tar stores it. Setting one needs
    /// CAP_SETFCAP: a recorded skip, not a silent pass, when not root.
    @Test(.enabled(if: getuid() == 0, "setting security.capability needs root (CAP_SETFCAP)"))
    func gnuTarCapabilityXattr() throws {
        let dir = try TempDir()
        try makeTree(dir, extended: false)
        let file = dir.file("root/dir/b.bin")
        let cap = "0x0100000200200000000000000000000000000000"
        var r = try run(["setfattr", "-n", "security.capability", "-v", cap, file])
        try #require(r.status == 0, "setfattr security.capability: \(r.stderr)")
        let out = dir.file("out.tar")
        r = try run(["tar", "--format=posix", "--xattrs", "--xattrs-include=*", "-cf", out, "-C", dir.file("root"), "."])
        try #require(r.status == 0, "\(r.stderr)")
        let entries = try verify(try readFile(out), root: dir.file("root"), extended: false, format: "posix+capability")
        let entry = try #require(entries.first { $0.pathString == "./dir/b.bin" })
        #expect(entry.xattrs.contains(TarXattr(name: "security.capability",
                                               value: [1, 0, 0, 2, 0, 0x20] + [UInt8](repeating: 0, count: 14))))
    }

    @Test func bsdtarXattrs() throws {
        try #require(toolExists("bsdtar"), "bsdtar is missing: scripts/deps installs libarchive-tools")
        let dir = try TempDir()
        try makeTree(dir, extended: true)
        let file = dir.file("root/dir/b.bin")
        try #require(try run(["setfattr", "-n", "user.percent=%name", "-v", "0x00ff10", file]).status == 0)
        for format in ["pax", "gnutar", "ustar"] {
            let out = dir.file("out-\(format).tar")
            let r = try run(["bsdtar", "--format=\(format)", "-cf", out, "-C", dir.file("root"), "."])
            // ustar cannot hold the long names; bsdtar skips them and exits non-zero.
            if format != "ustar" { try #require(r.status == 0, "\(r.stderr)") }
            let archive = try readFile(out)
            let entries = try verify(archive, root: dir.file("root"), extended: format != "ustar", format: "bsdtar-\(format)")
            if format == "pax" {
                #expect(archive.firstRange(of: bytes("LIBARCHIVE.xattr.")) != nil)
                let entry = try #require(entries.first { $0.pathString == "./dir/b.bin" })
                #expect(entry.xattrs == [TarXattr(name: "user.percent=%name", value: [0, 0xff, 0x10])])
            }
        }
    }

    /// A 40 MiB file with 30 small data runs (more than fit in an old GNU header and its first
    /// extension block) and a trailing hole.
    private func makeSparse(_ path: String) throws {
        var script = "set -e\ntruncate -s 40M '\(path)'\n"
        for i in 0..<30 {
            script += "head -c \(1000 + i * 100) /dev/urandom | dd of='\(path)' bs=1 seek=\(i * 1_048_576 + 4096 * (i % 3)) conv=notrunc status=none\n"
        }
        let r = try run(["sh", "-c", script])
        try #require(r.status == 0, "\(r.stderr)")
    }

    @Test(arguments: [["--format=gnu", "--sparse"], ["--format=posix", "--sparse-version=0.0"],
                      ["--format=posix", "--sparse-version=0.1"], ["--format=posix", "--sparse-version=1.0"]])
    func sparse(options: [String]) throws {
        let dir = try TempDir()
        try run(["mkdir", dir.file("root")])
        let file = dir.file("root/sparse.bin")
        try makeSparse(file)
        try #require(try run(["sh", "-c", "printf tail > '\(dir.file("root/after.txt"))'"]).status == 0)
        let out = dir.file("out.tar")
        let r = try run(["tar"] + options + ["-cf", out, "-C", dir.file("root"), "sparse.bin", "after.txt"])
        try #require(r.status == 0, "\(r.stderr)")
        let archive = try readFile(out)
        let read = try readAll(archive)
        try #require(read.map(\.0.pathString) == ["sparse.bin", "after.txt"])
        let (entry, stored) = read[0]
        let original = try readFile(file)
        #expect(entry.size == UInt64(original.count))
        let map = try #require(entry.sparseMap)
        #expect(map.count >= 2)
        #expect(entry.storedSize < entry.size)
        #expect(UInt64(stored.count) == entry.storedSize)
        // Rebuild the file from the map and the stored bytes (taken from the archive at dataOffset).
        var rebuilt = [UInt8](repeating: 0, count: Int(entry.size))
        var pos = Int(entry.dataOffset)
        for seg in map {
            rebuilt.replaceSubrange(Int(seg.offset)..<Int(seg.offset + seg.length), with: archive[pos..<(pos + Int(seg.length))])
            pos += Int(seg.length)
        }
        #expect(rebuilt == original)
        #expect(read[1].1 == bytes("tail"))
    }
}
