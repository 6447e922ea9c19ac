#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Sets an extended attribute without following symlinks (test fixtures plant them).
public func setExtendedAttribute(path: String, name: String, value: [UInt8]) throws {
    let result = value.withUnsafeBytes { v in
        LinuxCalls.lsetxattr(path, name, v.baseAddress, v.count, 0)
    }
    if result != 0 { throw HarnessError("lsetxattr \(name) on \(path): \(String(cString: strerror(errno)))") }
}
