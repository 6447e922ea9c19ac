#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import StrataSystem
import StrataTestSupport
import Synchronization
import Testing

/// A copy-up streams the file's data without the table lock: the rest of the mount goes on.
@Suite(.serialized, .mountTimeLimit) struct UpperConcurrencyTests {
    static let hugeSize = 64 << 20

    /// While a 64 MiB lower file is copied up (an open for writing), stat, readdir, create,
    /// mkdir, rename and a small copy-up elsewhere in the mount all complete; a second open of
    /// the same file waits for the first copy instead of making its own. The daemon holds the
    /// copy-up after its first chunk until a gate file exists (STRATA_TEST_COPYUP_GATE), and the
    /// test opens the gate only after every other operation returned: the order is forced, not
    /// raced. Should an operation wait for the copy-up (the bug), it could never return with
    /// the gate closed: after 120 s the gate is opened anyway and the test fails.
    @Test func otherRequestsProceedDuringACopyUp() throws {
        let f = try UpperFixture(extraLower: "mkdir huge.d; yes strata-copy-up | head -c \(Self.hugeSize) > huge.d/huge")
        let gate = f.temp.child("copy-up-gate")
        defer { close(open(gate, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)) }   // never leave the daemon held
        try f.mount(environment: ["STRATA_TEST_COPYUP_GATE": gate])
        let work = f.upper + ".work/tmp"
        let huge = f.path("huge.d/huge")

        // [first open returned, second open returned]; the open results, errno or 0.
        let returned = Mutex([false, false])
        let results = Mutex([Int32(-1), Int32(-1)])
        let openers = DispatchGroup()
        func startOpener(_ i: Int) {
            DispatchQueue.global().async(group: openers) {
                let fd = open(huge, O_WRONLY | O_CLOEXEC)
                let code = fd < 0 ? errno : 0
                returned.withLock { $0[i] = true }
                results.withLock { $0[i] = code }
                if fd >= 0 { close(fd) }
            }
        }
        startOpener(0)
        // The copy is under way once its work file exists.
        let started = Mounts.waitUntil(seconds: 60) { ((try? names(in: work)) ?? []).contains { $0.hasPrefix("#") } }
        #expect(started, "no copy-up in \(work)")
        startOpener(1)

        let failures = Mutex<[String]>([])
        let others = DispatchSemaphore(value: 0)
        let mountpoint = f.mountpoint
        DispatchQueue.global().async {
            func path(_ p: String) -> String { mountpoint + "/" + p }
            func check(_ what: String, _ ok: Bool) {
                if !ok { let e = String(cString: strerror(errno)); failures.withLock { $0.append("\(what): \(e)") } }
            }
            for i in 0..<40 {
                check("lstat etc/hosts", statOf(path("etc/hosts")) != nil)
                check("lstat d/e/f", statOf(path("d/e/f")) != nil)
                check("lstat huge.d/missing\(i)", statOf(path("huge.d/missing\(i)")) == nil)
                check("readdir etc", ((try? names(in: path("etc"))) ?? []).contains("hosts"))
                let new = path("home/new\(i)")
                let fd = open(new, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
                check("create \(new)", fd >= 0)
                if fd >= 0 { check("write", write(fd, "x", 1) == 1); close(fd) }
                check("mkdir", mkdir(path("home/dir\(i)"), 0o755) == 0)
                check("rename", rename(new, path("home/moved\(i)")) == 0)
            }
            // A small copy-up of another file does not wait for the big one either.
            let small = open(path("etc/hosts"), O_WRONLY | O_APPEND | O_CLOEXEC)
            check("copy-up etc/hosts", small >= 0)
            if small >= 0 { check("append", write(small, "!", 1) == 1); close(small) }
            check("readdir home", ((try? names(in: path("home"))) ?? []).filter { $0.hasPrefix("moved") }.count == 40)
            others.signal()
        }
        let finishedWhileHeld = others.wait(timeout: .now() + 120) == .success
        let openedWhileHeld = returned.withLock { $0 }
        close(open(gate, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644))
        if !finishedWhileHeld { others.wait() }

        openers.wait()
        #expect(finishedWhileHeld, "the other operations waited for the copy-up")
        #expect(openedWhileHeld == [false, false], "an open of the file returned before its copy-up was released")
        #expect(failures.withLock { $0 }.isEmpty, "\(failures.withLock { $0 }.prefix(5))")
        #expect(results.withLock { $0 } == [0, 0], "both opens succeed (one copy, the second waited for it)")
        #expect(readText(f.path("etc/hosts")) == "hello!")

        // One whole copy in place, nothing left in the work directory.
        #expect(statOf(f.upper + "/huge.d/huge")?.st_size == off_t(Self.hugeSize))
        #expect(((try? names(in: work)) ?? ["?"]).isEmpty)
        let data = try FileIO.readAll(f.path("huge.d/huge"))
        #expect(data.count == Self.hugeSize)
        #expect(Self.isPattern(data), "the copy holds the lower file's bytes")
        try f.unmount()
    }

    /// Whether `data` is "strata-copy-up\n" repeated (and cut), block by block with memcmp.
    static func isPattern(_ data: [UInt8]) -> Bool {
        let line = Array("strata-copy-up\n".utf8)
        var block: [UInt8] = []
        for _ in 0..<4096 { block += line }   // a whole number of lines: every block starts one
        var offset = 0
        while offset < data.count {
            let n = min(block.count, data.count - offset)
            let same = data.withUnsafeBytes { d in block.withUnsafeBytes { b in memcmp(d.baseAddress! + offset, b.baseAddress!, n) == 0 } }
            if !same { return false }
            offset += n
        }
        return true
    }
}

/// The names in a directory (without "." and "..").
private func names(in path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw SystemError(code: errno, operation: "opendir", path: path) }
    defer { closedir(dir) }
    var result: [String] = []
    while let entry = readdir(dir) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
        if name != "." && name != ".." { result.append(name) }
    }
    return result
}
