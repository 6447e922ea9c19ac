#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataSystem
import StrataTar
import StrataTestSupport

/// Names the kernel cannot hold (issue 10, point 9): a name over 255 bytes or a path over
/// 4095 bytes is refused when indexing, as umoci refuses it, in one line naming the entry,
/// and nothing is mounted. The longest ones Linux takes are served.
@Suite(.mountTimeLimit, .enabled(if: canCompareMounts, "needs root, umoci and a built strata"))
struct NameLimitMountTests {
    /// A path of exactly `length` bytes made of valid names (99-byte directories).
    static func longPath(_ length: Int) -> String {
        let directories = (length - 1) / 100
        let dirs = (0..<directories).map { String($0 % 10) + String(repeating: "d", count: 98) }
        return (dirs + [String(repeating: "f", count: length - directories * 100)]).joined(separator: "/")
    }

    /// `strata mount` of the image fails with one line mentioning `mentions`; nothing is mounted.
    func expectRefused(_ b: ImageBuilder, _ temp: TempDirectory, mentions: [String],
                       sourceLocation: SourceLocation = #_sourceLocation) throws {
        let mnt = try temp.makeDirectory("mnt")
        let result = try StrataBinary.run(["mount", "--cache", temp.child("cache"), b.reference("test"), mnt], timeout: 60)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(result.status != 0 && !result.timedOut, "exited \(result.status)", sourceLocation: sourceLocation)
        #expect(lines.count == 1 && result.stderr.utf8.count < 500, "stderr:\n\(result.stderr)", sourceLocation: sourceLocation)
        for word in mentions {
            #expect(result.stderr.contains(word), "stderr does not name \(word):\n\(result.stderr)", sourceLocation: sourceLocation)
        }
        let left = MountTable.mounts(under: temp.path)
        #expect(left.isEmpty, "left mounted: \(left)", sourceLocation: sourceLocation)
        for m in left { try? Mounts.forceUnmount(m) }
    }

    @Test func nameOf256BytesIsRefusedAsUmociRefusesIt() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let name = String(repeating: "n", count: 256)
        let b = try makeImage(temp, layers: [[Items.file("ok", "ok"), Items.file("dir/" + name, "too long")]])
        #expect(throws: (any Error).self) { try Umoci.unpack(layout: b.layout, tag: "test", into: temp.child("bundle")) }
        try expectRefused(b, temp, mentions: ["dir/" + String(repeating: "n", count: 60), "(256 bytes)", "NAME_MAX"])
    }

    @Test func pathOf4097BytesIsRefused() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [[Items.file(Self.longPath(4097), "deep")]])
        try expectRefused(b, temp, mentions: ["path of 4097 bytes", "PATH_MAX"])
    }

    @Test func longSymlinkTargetIsRefused() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let b = try makeImage(temp, layers: [[Items.symlink("l", to: String(repeating: "t", count: 4096))]])
        try expectRefused(b, temp, mentions: ["'l'", "symlink target of 4096 bytes"])
    }

    @Test func nameOf255BytesIsServedAsUmociUnpacksIt() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let name = String(repeating: "n", count: 255)
        let b = try makeImage(temp, layers: [[Items.file("dir/" + name, "longest name"), Items.dir(name),
                                              Items.symlink(name + "/" + name, to: "../dir/" + name)]])
        let c = try expectSameAsUmoci(b)
        #expect(c.mounted.entry("dir/" + name)?.size == 12)
    }

    @Test func pathOf4095BytesIsServed() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let path = Self.longPath(4095)
        let b = try makeImage(temp, layers: [[Items.file(path, "deep"), Items.symlink("l", to: String(repeating: "t", count: 4095))]])
        let mnt = temp.child("mnt")
        let guardian = try MountGuard(image: b.reference("test"), mountpoint: mnt, extraArgs: ["--cache", temp.child("cache")])
        defer { withExtendedLifetime(guardian) {} }
        // Walked one name at a time: the mount point's own path would take the whole past PATH_MAX.
        var dir = open(mnt, LinuxCalls.openPath | O_DIRECTORY | O_CLOEXEC)
        #expect(dir >= 0)
        let names = path.split(separator: "/").map(String.init)
        for name in names.dropLast() where dir >= 0 {
            let next = openat(dir, name, LinuxCalls.openPath | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            close(dir)
            dir = next
            #expect(dir >= 0, "\(name.prefix(8)): errno \(errno)")
        }
        if dir >= 0 {
            let fd = openat(dir, names.last!, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
            close(dir)
            #expect(fd >= 0, "errno \(errno)")
            if fd >= 0 {
                let file = FileDescriptor(rawValue: fd)
                defer { file.close() }
                var buffer = [UInt8](repeating: 0, count: 16)
                let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                #expect(Array(buffer[0..<n]) == Array("deep".utf8))
            }
        }
        var target = [CChar](repeating: 0, count: 8192)
        #expect(readlink(mnt + "/l", &target, target.count) == 4095)
        try guardian.unmount()
    }
}
