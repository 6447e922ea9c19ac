#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

// Calls the conformance scenarios make that Swift's Glibc module does not import (the xattr
// calls, renameat2, the thread-only credential system calls), from StrataSystem's LinuxCalls.
enum PosixCalls {
    static func lsetxattr(_ path: String, _ name: String, _ value: String, _ flags: Int32) -> Int32 {
        LinuxCalls.lsetxattr(path, name, value, value.utf8.count, flags)
    }
    static func fsetxattr(_ fd: Int32, _ name: String, _ value: String, _ flags: Int32) -> Int32 {
        LinuxCalls.fsetxattr(fd, name, value, value.utf8.count, flags)
    }
    static func lremovexattr(_ path: String, _ name: String) -> Int32 { LinuxCalls.lremovexattr(path, name) }

    /// The value, or nil with errno set.
    static func lgetxattr(_ path: String, _ name: String) -> String? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { LinuxCalls.lgetxattr(path, name, $0.baseAddress, $0.count) }
        return n < 0 ? nil : String(decoding: buffer[0..<n], as: UTF8.self)
    }

    /// The names, sorted, or nil with errno set.
    static func llistxattr(_ path: String) -> [String]? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = LinuxCalls.llistxattr(path, &buffer, buffer.count)
        if n < 0 { return nil }
        return buffer[0..<n].split(separator: 0).map { String(decoding: $0.map { UInt8(bitPattern: $0) }, as: UTF8.self) }.sorted()
    }

    static func renameat2(_ from: String, _ to: String, _ flags: UInt32) -> Int32 {
        LinuxCalls.renameat2(AT_FDCWD, from, AT_FDCWD, to, flags)
    }

    // MARK: Credentials of the calling thread only

    /// Runs `body` as uid/gid (no supplementary groups but `groups`) on this thread only.
    /// glibc's setresuid changes every thread of the process (other tests run beside us); the
    /// raw system calls change the calling thread's credentials alone. The saved uid stays 0,
    /// so the thread can return to root (and its capabilities come back with euid 0).
    static func asUser<T>(_ uid: UInt32, _ gid: UInt32, groups: [UInt32] = [], _ body: () -> T) -> T {
        let saved = supplementaryGroups()
        setGroups(groups.map { gid_t($0) })
        precondition(LinuxCalls.threadSetresgid(gid, gid, 0) == 0, "setresgid: \(errno)")
        precondition(LinuxCalls.threadSetresuid(uid, uid, 0) == 0, "setresuid: \(errno)")
        defer {
            precondition(LinuxCalls.threadSetresuid(0, 0, 0) == 0, "setresuid back: \(errno)")
            precondition(LinuxCalls.threadSetresgid(0, 0, 0) == 0, "setresgid back: \(errno)")
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
        let r = LinuxCalls.threadSetgroups(groups)
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
