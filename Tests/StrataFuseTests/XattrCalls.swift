#if canImport(Glibc)
import Glibc
#endif

// <sys/xattr.h> is not part of Swift's Glibc module, and only StrataFuse may import CFuse
// (which happens to include it): reach libc's functions through dlsym.
private typealias GetxattrFunction = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafeMutableRawPointer?, Int) -> Int
private typealias ListxattrFunction = @convention(c) (UnsafePointer<CChar>, UnsafeMutablePointer<CChar>?, Int) -> Int

private let getxattrFunction = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "getxattr")!, to: GetxattrFunction.self)
private let listxattrFunction = unsafeBitCast(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "listxattr")!, to: ListxattrFunction.self)

func getxattr(_ path: String, _ name: String, _ value: UnsafeMutableRawPointer?, _ size: Int) -> Int {
    getxattrFunction(path, name, value, size)
}

func listxattr(_ path: String, _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
    listxattrFunction(path, list, size)
}
