#if canImport(Glibc)
import Glibc
#endif

// Calls the conformance scenarios make that Swift's Glibc module does not import
// (sys/xattr.h, renameat2 and the raw syscall(2) need _GNU_SOURCE), looked up in libc once.
enum PosixCalls {
    private typealias SetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
    private typealias GetXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?, UnsafeMutableRawPointer?, Int) -> Int
    private typealias ListXattr = @convention(c) (UnsafePointer<CChar>?, UnsafeMutablePointer<CChar>?, Int) -> Int
    private typealias RemoveXattr = @convention(c) (UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Int32
    private typealias FSetXattr = @convention(c) (Int32, UnsafePointer<CChar>?, UnsafeRawPointer?, Int, Int32) -> Int32
    private typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>?, Int32, UnsafePointer<CChar>?, UInt32) -> Int32
    private typealias Syscall3 = @convention(c) (Int, Int, Int, Int) -> Int

    private static func symbol<T>(_ name: String, as type: T.Type) -> T {
        guard let handle = dlopen(nil, RTLD_NOW), let s = dlsym(handle, name) else { fatalError("libc has no \(name)") }
        return unsafeBitCast(s, to: type)
    }

    nonisolated(unsafe) private static let lsetxattrCall = symbol("lsetxattr", as: SetXattr.self)
    nonisolated(unsafe) private static let lgetxattrCall = symbol("lgetxattr", as: GetXattr.self)
    nonisolated(unsafe) private static let llistxattrCall = symbol("llistxattr", as: ListXattr.self)
    nonisolated(unsafe) private static let lremovexattrCall = symbol("lremovexattr", as: RemoveXattr.self)
    nonisolated(unsafe) private static let fsetxattrCall = symbol("fsetxattr", as: FSetXattr.self)
    nonisolated(unsafe) private static let renameat2Call = symbol("renameat2", as: RenameAt2.self)
    // syscall(2) is variadic; with integer arguments only, the x86-64 and arm64 Linux ABIs pass
    // them exactly as to a fixed-argument function.
    nonisolated(unsafe) private static let syscall3 = symbol("syscall", as: Syscall3.self)

    static func lsetxattr(_ path: String, _ name: String, _ value: String, _ flags: Int32) -> Int32 {
        lsetxattrCall(path, name, value, value.utf8.count, flags)
    }
    static func fsetxattr(_ fd: Int32, _ name: String, _ value: String, _ flags: Int32) -> Int32 {
        fsetxattrCall(fd, name, value, value.utf8.count, flags)
    }
    static func lremovexattr(_ path: String, _ name: String) -> Int32 { lremovexattrCall(path, name) }

    /// The value, or nil with errno set.
    static func lgetxattr(_ path: String, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { lgetxattrCall(path, name, $0.baseAddress, $0.count) }
        return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// The names, sorted, or nil with errno set.
    static func llistxattr(_ path: String) -> [String]? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = llistxattrCall(path, &buffer, buffer.count)
        if n < 0 { return nil }
        return buffer[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }.sorted()
    }

    static func renameat2(_ from: String, _ to: String, _ flags: UInt32) -> Int32 {
        renameat2Call(AT_FDCWD, from, AT_FDCWD, to, flags)
    }

    // MARK: Credentials of the calling thread only

    #if arch(x86_64)
    static let sysSetgroups = 116, sysSetresuid = 117, sysSetresgid = 119
    #else
    static let sysSetgroups = 159, sysSetresuid = 147, sysSetresgid = 149
    #endif

    /// Runs `body` as uid/gid (no supplementary groups but `groups`) on this thread only.
    /// glibc's setresuid changes every thread of the process (other tests run beside us); the
    /// raw system calls change the calling thread's credentials alone. The saved uid stays 0,
    /// so the thread can return to root (and its capabilities come back with euid 0).
    static func asUser<T>(_ uid: UInt32, _ gid: UInt32, groups: [UInt32] = [], _ body: () -> T) -> T {
        let saved = supplementaryGroups()
        setGroups(groups.map { gid_t($0) })
        precondition(syscall3(sysSetresgid, Int(gid), Int(gid), 0) == 0, "setresgid: \(errno)")
        precondition(syscall3(sysSetresuid, Int(uid), Int(uid), 0) == 0, "setresuid: \(errno)")
        defer {
            precondition(syscall3(sysSetresuid, 0, 0, 0) == 0, "setresuid back: \(errno)")
            precondition(syscall3(sysSetresgid, 0, 0, 0) == 0, "setresgid back: \(errno)")
            setGroups(saved)
        }
        return body()
    }

    private static func supplementaryGroups() -> [gid_t] {
        var groups = [gid_t](repeating: 0, count: 256)
        let n = getgroups(Int32(groups.count), &groups)
        return n < 0 ? [] : Array(groups[0..<Int(n)])
    }

    private static func setGroups(_ groups: [gid_t]) {
        let r = groups.withUnsafeBufferPointer { syscall3(sysSetgroups, groups.count, Int(bitPattern: $0.baseAddress), 0) }
        precondition(r == 0, "setgroups: \(errno)")
    }
}

/// Runs `body` on a thread of its own and waits for it: the scenarios change the thread's
/// credentials, which must not leak into the test runner's shared threads.
func onOwnThread(_ body: @escaping () -> Void) {
    final class Box { let body: () -> Void; init(_ b: @escaping () -> Void) { body = b } }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let r = pthread_create(&thread, nil, { arg in
        let b = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
        b.body()
        return nil
    }, box)
    precondition(r == 0, "pthread_create: \(r)")
    pthread_join(thread, nil)
}
