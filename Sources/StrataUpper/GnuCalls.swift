#if canImport(Glibc)
import Glibc
#endif

// Calls Swift's Glibc module does not import (sys/xattr.h is not in it; renameat2 and
// fallocate need _GNU_SOURCE), looked up in libc once and typed with their C signatures.
enum GnuCalls {
    typealias GetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    typealias SetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
    typealias ListXattr = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
    typealias RemoveXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32
    typealias Fallocate = @convention(c) (Int32, Int32, Int, Int) -> Int32

    static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let s = dlsym(handle, name) else { fatalError("libc has no \(name)") }
        return unsafeBitCast(s, to: type)
    }

    nonisolated(unsafe) static let getxattr = symbol("getxattr", as: GetXattr.self)
    nonisolated(unsafe) static let setxattr = symbol("setxattr", as: SetXattr.self)
    nonisolated(unsafe) static let listxattr = symbol("listxattr", as: ListXattr.self)
    nonisolated(unsafe) static let removexattr = symbol("removexattr", as: RemoveXattr.self)
    nonisolated(unsafe) static let renameat2 = symbol("renameat2", as: RenameAt2.self)
    nonisolated(unsafe) static let fallocate = symbol("fallocate64", as: Fallocate.self)
}
