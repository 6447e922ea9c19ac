import Testing
import Glibc
@testable import StrataSystem

@Suite struct MountTableTests {
    @Test func parsesEveryFieldAndDecodesOctalEscapes() throws {
        let line = #"36 35 98:0 /mnt\040root /mnt/a\040b\011c\134d rw,noatime master:1 shared:5 - ext3 /dev/my\040disk rw,errors=continue"#
        let entry = try #require(MountTable.parse(line: Array(line.utf8)[...]))
        #expect(entry.id == 36 && entry.parentID == 35 && entry.major == 98 && entry.minor == 0)
        #expect(entry.root == "/mnt root")
        #expect(entry.mountpoint == "/mnt/a b\tc\\d")
        #expect(entry.options == ["rw", "noatime"])
        #expect(entry.optionalFields == ["master:1", "shared:5"])
        #expect(entry.fsType == "ext3")
        #expect(entry.source == "/dev/my disk")
        #expect(entry.superOptions == ["rw", "errors=continue"])
    }

    @Test func withoutOptionalFields() throws {
        let entry = try #require(MountTable.parse(line: Array("25 1 0:22 / /mnt/s rw - fuse.strata strata rw,user_id=0".utf8)[...]))
        #expect(entry.optionalFields.isEmpty && entry.fsType == "fuse.strata" && entry.source == "strata")
        #expect(entry.mountpoint == "/mnt/s" && entry.superOptions == ["rw", "user_id=0"])
    }

    @Test func malformedLinesAreLeftOutAndTheLastEntryIsOnTop() {
        let text = """
            1 0 8:1 / / rw - ext4 /dev/sda1 rw
            not a mountinfo line
            2 1 0:5 / /m rw - tmpfs tmpfs rw
            3 1 0:6 / /m rw shared:2 - proc proc rw
            4 1 x:y / /bad rw - tmpfs tmpfs rw
            """
        let entries = MountTable.parse(Array(text.utf8))
        #expect(entries.map(\.id) == [1, 2, 3])
        #expect(MountTable.top(at: "/m", in: entries)?.fsType == "proc")
        #expect(MountTable.top(at: "/none", in: entries) == nil)
        // A backslash not followed by three octal digits stays as it is.
        #expect(MountTable.unescape(Array(#"/a\9b\04"#.utf8)[...]) == #"/a\9b\04"#)
    }

    @Test(.enabled(if: FileIO.exists(MountTable.selfPath), "needs /proc"))
    func thisProcessTable() throws {
        #expect(MountTable.isMountPoint("/"))
        #expect(MountTable.isMounted("/proc/"))
        #expect(MountTable.mounts(under: "/proc").last == "/proc")
        #expect(MountTable.canonical("/proc/") == "/proc")
        #expect(MountTable.canonical("/etc//passwd") == "/etc/passwd")
    }
}
