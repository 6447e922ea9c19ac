#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

// <sys/xattr.h> is not part of Swift's Glibc module: the calls come from StrataSystem's LinuxCalls.

func getxattr(_ path: String, _ name: String, _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int {
    LinuxCalls.getxattr(path, name, value, size)
}

func listxattr(_ path: String, _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
    LinuxCalls.listxattr(path, list, size)
}
