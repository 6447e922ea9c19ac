#if canImport(Glibc)
import Glibc
#endif

// Calls that Swift's Glibc module does not import (sys/xattr.h is not in it; pipe2 needs
// _GNU_SOURCE). This target may not add a C module, so they are looked up in libc at run
// time, typed with their C signatures.

private typealias ListXattr = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
private typealias GetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
private typealias SetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

private func libcSymbol<T>(_ name: String, as type: T.Type) -> T {
    // dlopen(nil) is the program's global scope, where libc's symbols are.
    guard let handle = dlopen(nil, RTLD_NOW), let symbol = dlsym(handle, name) else {
        fatalError("libc has no \(name)")
    }
    return unsafeBitCast(symbol, to: type)
}

// Looked up once; immutable afterwards, so sharing between test threads is safe.
nonisolated(unsafe) private let listXattr = libcSymbol("llistxattr", as: ListXattr.self)
nonisolated(unsafe) private let getXattr = libcSymbol("lgetxattr", as: GetXattr.self)
nonisolated(unsafe) private let setXattr = libcSymbol("lsetxattr", as: SetXattr.self)
nonisolated(unsafe) private let pipe2Call = libcSymbol("pipe2", as: Pipe2.self)

enum Libc {
    static func llistxattr(_ path: UnsafePointer<CChar>, _ list: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        listXattr(path, list, size)
    }

    static func lgetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>, _ value: UnsafeMutablePointer<CChar>?, _ size: Int) -> Int {
        getXattr(path, name, UnsafeMutableRawPointer(value), size)
    }

    static func lsetxattr(_ path: UnsafePointer<CChar>, _ name: UnsafePointer<CChar>, _ value: UnsafeRawPointer?, _ size: Int, _ flags: Int32) -> Int32 {
        setXattr(path, name, value, size, flags)
    }

    static func pipe2(_ fds: UnsafeMutablePointer<Int32>, _ flags: Int32) -> Int32 {
        pipe2Call(fds, flags)
    }
}

/// Sets an extended attribute without following symlinks (test fixtures plant them).
public func setExtendedAttribute(path: String, name: String, value: [UInt8]) throws {
    let result = value.withUnsafeBytes { v in
        Libc.lsetxattr(path, name, v.baseAddress, v.count, 0)
    }
    if result != 0 { throw HarnessError("lsetxattr \(name) on \(path): \(String(cString: strerror(errno)))") }
}
