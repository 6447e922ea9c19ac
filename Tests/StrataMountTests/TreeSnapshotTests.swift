#if canImport(Glibc)
import Glibc
#endif
import Testing
import StrataHash
import StrataSystem
import StrataTestSupport

/// Devices, owners and trusted.* xattrs need root: they are only in the fixture of the
/// root-only tests, which record a skip when not root (never a silent partial pass).
private let isRoot = getuid() == 0
private let needsRoot: Comment = "devices, owners and trusted.* xattrs need root"

/// A tree with one of every kind of entry the mount tests meet in images.
private func makeFixture(at root: String, privileged: Bool) throws {
    try FileIO.makeDirectories(root + "/usr/bin")
    try FileIO.makeDirectories(root + "/etc")
    try FileIO.makeDirectories(root + "/tmp")
    try write(root + "/etc/hostname", "strata\n", mode: 0o644)
    try write(root + "/usr/bin/tool", "#!/bin/sh\necho tool\n", mode: 0o755)
    try write(root + "/usr/bin/setuid", "suid\n", mode: 0o4755)
    try write(root + "/etc/owned", "owned\n", mode: 0o640)
    #expect(chmod(root + "/tmp", 0o1777) == 0)
    #expect(link(root + "/usr/bin/tool", root + "/usr/bin/tool-alias") == 0)
    #expect(symlink("../etc/hostname", root + "/usr/hostname-link") == 0)
    #expect(symlink("/does/not/exist", root + "/dangling") == 0)
    #expect(mkfifo(root + "/fifo", 0o600) == 0)
    try setExtendedAttribute(path: root + "/etc/hostname", name: "user.origin", value: Array("fixture".utf8))
    // A name that is not UTF-8: paths are bytes and must survive as such.
    let odd = Array((root + "/caf").utf8) + [0xE9]
    let fd = odd.withUnsafeBufferPointer { b -> Int32 in
        var z = Array(b); z.append(0)
        return z.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { open($0.baseAddress!, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644) } }
    }
    #expect(fd >= 0)
    close(fd)
    if privileged {
        #expect(chown(root + "/etc/owned", 1000, 1001) == 0)
        #expect(mknod(root + "/null", S_IFCHR | 0o666, dev_t(DeviceNumber.make(major: 1, minor: 3))) == 0)
        try setExtendedAttribute(path: root + "/usr/bin/tool", name: "trusted.overlay.opaque", value: Array("y".utf8))
    }
    // A fixed mtime on everything the tests touch later, so only planted changes differ.
    for path in ["/etc/hostname", "/usr/bin/tool", "/etc/owned", "/usr/bin/setuid"] {
        setMtime(root + path, seconds: 1_700_000_000, nanoseconds: 123_456_789)
    }
}

private func write(_ path: String, _ text: String, mode: mode_t) throws {
    try FileIO.writeAtomically(path, Array(text.utf8), mode: mode)
    // writeAtomically's mode goes through the umask; set the exact bits (suid too).
    #expect(chmod(path, mode) == 0)
}

private func setMtime(_ path: String, seconds: Int, nanoseconds: Int) {
    var times = [timespec(tv_sec: seconds, tv_nsec: nanoseconds), timespec(tv_sec: seconds, tv_nsec: nanoseconds)]
    #expect(utimensat(AT_FDCWD, path, &times, AT_SYMLINK_NOFOLLOW) == 0)
}

/// A fixture and a `cp -a` copy of it, in a temp dir removed afterwards.
private func fixtureAndCopy(privileged: Bool = false) throws -> (TempDirectory, left: String, right: String) {
    let temp = try TempDirectory()
    let left = temp.child("left")
    let right = temp.child("right")
    try makeFixture(at: left, privileged: privileged)
    try Command.check("/bin/cp", ["-a", left, right])
    return (temp, left, right)
}

@Suite struct TreeSnapshotTests {
    @Test func capturesEveryKindOfEntry() throws {
        let (temp, left, _) = try fixtureAndCopy()
        defer { withExtendedLifetime(temp) {} }
        let snap = try TreeSnapshot.capture(root: left)

        #expect(snap.entry(".")?.type == .directory)
        #expect(snap.entry("tmp")?.mode == 0o1777)
        #expect(snap.entry("usr/bin/setuid")?.mode == 0o4755)
        let hostname = try #require(snap.entry("etc/hostname"))
        #expect(hostname.type == .regular)
        #expect(hostname.size == 7)
        #expect(hostname.contentSHA256 == SHA256Hex.of("strata\n"))
        #expect(hostname.mtimeSeconds == 1_700_000_000 && hostname.mtimeNanoseconds == 123_456_789)
        #expect(hostname.xattrs.map { String(decoding: $0.name, as: UTF8.self) } == ["user.origin"])
        #expect(snap.entry("usr/hostname-link")?.linkTarget == Array("../etc/hostname".utf8))
        #expect(snap.entry("dangling")?.type == .symlink)
        #expect(snap.entry("fifo")?.type == .fifo)
        #expect(snap.entry("usr/bin/tool")?.nlink == 2)
        #expect(snap.hardlinkGroups == [[Array("usr/bin/tool".utf8), Array("usr/bin/tool-alias".utf8)]])
        #expect(snap.entries[Array("caf".utf8) + [0xE9]] != nil)
    }

    @Test(.enabled(if: isRoot, needsRoot))
    func capturesDevicesOwnersAndTrustedXattrs() throws {
        let (temp, left, right) = try fixtureAndCopy(privileged: true)
        defer { withExtendedLifetime(temp) {} }
        let snap = try TreeSnapshot.capture(root: left)
        let null = try #require(snap.entry("null"))
        #expect(null.type == .charDevice)
        #expect(null.rdev == DeviceNumber.make(major: 1, minor: 3))
        #expect(snap.entry("etc/owned")?.uid == 1000)
        #expect(snap.entry("etc/owned")?.gid == 1001)
        #expect(snap.entry("usr/bin/tool")?.xattrs.contains { String(decoding: $0.name, as: UTF8.self) == "trusted.overlay.opaque" } == true)
        // A copy with all of them is still equal.
        #expect(snap.differences(from: try TreeSnapshot.capture(root: right)) == [])
    }

    @Test func copyIsEqual() throws {
        let (temp, left, right) = try fixtureAndCopy()
        defer { withExtendedLifetime(temp) {} }
        let a = try TreeSnapshot.capture(root: left)
        let b = try TreeSnapshot.capture(root: right)
        #expect(a.count == b.count)
        // The root directory itself is new in the copy only by ctime, which is not compared.
        #expect(a.differences(from: b) == [], "\(a.dump())\n---\n\(b.dump())")
    }

    @Test func namesEachPlantedDifference() throws {
        let (temp, left, right) = try fixtureAndCopy()
        defer { withExtendedLifetime(temp) {} }
        // Mode.
        #expect(chmod(right + "/usr/bin/setuid", 0o755) == 0)
        // Content, same size and mtime so only the hash can tell.
        try write(right + "/etc/owned", "OWNED\n", mode: 0o640)
        setMtime(right + "/etc/owned", seconds: 1_700_000_000, nanoseconds: 123_456_789)
        // xattr value, and one only on the right.
        try setExtendedAttribute(path: right + "/etc/hostname", name: "user.origin", value: Array("changed".utf8))
        try setExtendedAttribute(path: right + "/usr/bin/setuid", name: "user.extra", value: [0, 1, 2])
        // Link target (restore the directory's mtime, which the swap touched).
        #expect(unlink(right + "/usr/hostname-link") == 0)
        #expect(symlink("/etc/hostname", right + "/usr/hostname-link") == 0)
        // Hardlink split: the alias becomes a separate file with identical metadata.
        #expect(unlink(right + "/usr/bin/tool-alias") == 0)
        try Command.check("/bin/cp", ["-a", right + "/usr/bin/tool", right + "/usr/bin/tool-alias"])
        // Missing entries on either side.
        #expect(unlink(right + "/fifo") == 0)
        try write(right + "/etc/new", "new\n", mode: 0o644)

        let diffs = try TreeSnapshot.capture(root: left)
            .differences(from: TreeSnapshot.capture(root: right), ignoring: [.dirMtime])
        let expected = [
            "usr/bin/setuid: mode 4755 != 0755",
            "etc/owned: content sha256 \(SHA256Hex.of("owned\n")) != \(SHA256Hex.of("OWNED\n"))",
            "etc/hostname: xattr user.origin \"fixture\" != \"changed\"",
            "usr/bin/setuid: xattr user.extra only in right",
            "usr/hostname-link: link target ../etc/hostname != /etc/hostname",
            "hardlinks {usr/bin/tool, usr/bin/tool-alias} only in left",
            "usr/bin/tool: nlink 2 != 1",
            "fifo: only in left",
            "etc/new: only in right",
        ]
        for line in expected {
            #expect(diffs.contains(line), "missing \"\(line)\" in:\n\(diffs.joined(separator: "\n"))")
        }
        // Nothing beyond what was planted: each line concerns a planted path.
        let planted = ["usr/bin/setuid", "etc/owned", "etc/hostname", "usr/hostname-link", "hardlinks",
                       "usr/bin/tool", "usr/bin/tool-alias", "fifo", "etc/new"]
        for line in diffs {
            #expect(planted.contains { line.hasPrefix($0 + ":") || line.hasPrefix($0 + " ") }, "unexpected: \(line)")
        }
    }

    @Test(.enabled(if: isRoot, needsRoot))
    func namesAPlantedOwnerDifference() throws {
        let (temp, left, right) = try fixtureAndCopy(privileged: true)
        defer { withExtendedLifetime(temp) {} }
        #expect(lchown(right + "/etc/hostname", 0, 42) == 0)
        #expect(lchown(right + "/etc/owned", 7, 1001) == 0)
        let diffs = try TreeSnapshot.capture(root: left).differences(from: TreeSnapshot.capture(root: right), ignoring: [.dirMtime])
        #expect(diffs.sorted() == ["etc/hostname: gid 0 != 42", "etc/owned: uid 1000 != 7"], "\(diffs)")
    }

    @Test func ignoringFieldsAndDirectoryMtimes() throws {
        let (temp, left, right) = try fixtureAndCopy()
        defer { withExtendedLifetime(temp) {} }
        setMtime(right + "/etc/hostname", seconds: 1, nanoseconds: 0)
        setMtime(right + "/usr", seconds: 2, nanoseconds: 5)
        let a = try TreeSnapshot.capture(root: left)
        let b = try TreeSnapshot.capture(root: right)
        let all = a.differences(from: b)
        #expect(all.contains("etc/hostname: mtime 1700000000.123456789 != 1.000000000"))
        #expect(all.contains { $0.hasPrefix("usr: mtime ") && $0.hasSuffix(" != 2.000000005") })
        #expect(a.differences(from: b, ignoring: [.dirMtime]) == ["etc/hostname: mtime 1700000000.123456789 != 1.000000000"])
        #expect(a.differences(from: b, ignoring: [.mtime]) == [])
    }

    @Test func typeChangeAndUnprintableNames() throws {
        let (temp, left, right) = try fixtureAndCopy()
        defer { withExtendedLifetime(temp) {} }
        #expect(unlink(right + "/fifo") == 0)
        #expect(mkdir(right + "/fifo", 0o755) == 0)
        let odd = Array((right + "/caf").utf8) + [0xE9, 0]
        #expect(odd.withUnsafeBufferPointer { $0.withMemoryRebound(to: CChar.self) { unlink($0.baseAddress!) } } == 0)
        let diffs = try TreeSnapshot.capture(root: left).differences(from: TreeSnapshot.capture(root: right), ignoring: [.dirMtime, .dirNlink])
        #expect(diffs.contains("fifo: type fifo != directory"))
        #expect(diffs.contains("caf\u{FFFD}: only in left"))
        #expect(diffs.count == 2, "\(diffs)")
    }

    @Test func contentHashingCanBeSkipped() throws {
        let (temp, left, _) = try fixtureAndCopy()
        defer { withExtendedLifetime(temp) {} }
        let snap = try TreeSnapshot.capture(root: left, hashContents: false)
        #expect(snap.entry("etc/hostname")?.contentSHA256 == nil)
        #expect(snap.entry("etc/hostname")?.size == 7)
    }
}

/// Expected digests, spelled the way the snapshot spells them.
enum SHA256Hex {
    static func of(_ text: String) -> String {
        SHA256Hasher.hex(of: Array(text.utf8))
    }
}
