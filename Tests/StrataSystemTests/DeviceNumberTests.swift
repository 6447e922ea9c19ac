import Testing
import Glibc
@testable import StrataSystem

@Suite struct DeviceNumberTests {
    @Test(arguments: [(UInt32(0), UInt32(0)), (1, 3), (8, 1), (259, 0x12345), (0xfff, 0xff), (0x1000, 0x100), (0xffff_ffff, 0xffff_ffff)])
    func roundTrip(major: UInt32, minor: UInt32) {
        let dev = DeviceNumber.make(major: major, minor: minor)
        #expect(DeviceNumber.major(dev) == major)
        #expect(DeviceNumber.minor(dev) == minor)
    }

    @Test func matchesGlibcEncoding() {
        // glibc: makedev(1, 3) == 0x103; the high bits of each go above the low word.
        #expect(DeviceNumber.make(major: 1, minor: 3) == 0x103)
        #expect(DeviceNumber.make(major: 0x1234, minor: 0x56789) == 0x1000_5672_3489)
    }

    @Test(.enabled(if: FileIO.exists("/dev/null"), "needs /dev/null"))
    func devNullIsOneThree() throws {
        let st = try FileDescriptor.currentDirectory.stat(at: "/dev/null", flags: 0)
        #expect(DeviceNumber.major(UInt64(st.st_rdev)) == 1 && DeviceNumber.minor(UInt64(st.st_rdev)) == 3)
    }
}
