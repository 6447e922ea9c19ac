#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// A writable mount outlives its serving process too: the next server finds the kernel's
/// node numbers and open handles again from the upper and work directories.
@Suite(.serialized, .mountTimeLimit, .enabled(if: Requirement.isRoot, "needs root (FUSE mounts, overlayfs)"))
struct RestartWritableTests {
    /// Loops writing, fsyncing, renaming, reading back, and writing through a descriptor
    /// opened before any restart, while servers are killed and restarted.
    final class WriterLoop: @unchecked Sendable {
        let mountpoint: String
        private let lock = NSLock()
        private var stopFlag = false
        private var errorList: [String] = []
        private var count = 0
        private let done = DispatchSemaphore(value: 0)
        let held: Int32

        init(mountpoint: String) throws {
            self.mountpoint = mountpoint
            try FileIO.makeDirectories(mountpoint + "/w")
            held = open(mountpoint + "/w/held", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard held >= 0 else { throw HarnessError("open held: \(String(cString: strerror(errno)))") }
        }

        var errors: [String] { lock.withLock { errorList } }
        var iterations: Int { lock.withLock { count } }
        private func fail(_ message: String) { lock.withLock { errorList.append(message) } }
        private func error(_ what: String) { fail("\(what): \(String(cString: strerror(errno)))") }

        func start() {
            Thread { [self] in
                var i = 0
                while !lock.withLock({ stopFlag }) {
                    iterate(i)
                    i += 1
                    lock.withLock { count += 1 }
                }
                done.signal()
            }.start()
        }

        func advance(by more: Int = 2) -> Bool {
            let target = iterations + more
            return Mounts.waitUntil(seconds: 60) { iterations >= target }
        }

        func stop() {
            lock.withLock { stopFlag = true }
            done.wait()
            close(held)
        }

        private func iterate(_ i: Int) {
            let content = Array("iteration \(i)\n".utf8)
            let temp = mountpoint + "/w/tmp-\(i)", final = mountpoint + "/w/file-\(i % 5)"
            let fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { return error("create \(temp)") }
            if write(fd, content, content.count) != content.count { error("write \(temp)") }
            if fsync(fd) != 0 { error("fsync \(temp)") }
            if close(fd) != 0 { error("close \(temp)") }
            if rename(temp, final) != 0 { error("rename \(temp)") }
            guard let back = try? FileIO.readAll(final) else { return error("read \(final)") }
            if back != content { fail("read \(final): \(back.count) bytes, other content") }
            // The descriptor held since the start: one record per iteration at its offset.
            var record = Array(String(format: "%08d\n", i).utf8)
            // errno read right after each call: only a failed call's is worth printing.
            let wrote = pwrite(held, record, record.count, off_t(i * 9)), writeErrno = errno
            if wrote != 9 { fail("pwrite held at \(i * 9) gave \(wrote): \(String(cString: strerror(writeErrno)))") }
            var got = [UInt8](repeating: 0, count: 9)
            let read = pread(held, &got, 9, off_t(i * 9)), readErrno = errno
            if read != 9 {
                fail("pread held at \(i * 9) gave \(read): \(String(cString: strerror(readErrno)))")
            } else if got != record {
                fail("pread held at \(i * 9): \(String(decoding: got, as: UTF8.self).debugDescription), wrote \(String(decoding: record, as: UTF8.self).debugDescription)")
            }
            record.removeAll()
            if (try? FileIO.names(in: mountpoint + "/w")) == nil { error("list w") }
            if (try? FileIO.readAll(mountpoint + "/etc/hosts")) != Array("hello".utf8) { fail("read etc/hosts") }
            var st = stat()
            if fstat(held, &st) != 0 || st.st_size < off_t((i + 1) * 9) { error("fstat held") }
        }
    }

    @Test func writableMountSurvivesKillsAndRestarts() throws {
        let f = try UpperFixture()
        try f.mount()
        defer { try? f.unmount() }
        let loop = try WriterLoop(mountpoint: f.mountpoint)
        loop.start()
        var stopped = false
        defer { if !stopped { loop.stop() } }
        #expect(loop.advance())
        for _ in 0..<3 {
            try RestartSupport.killServer(f.mountpoint)
            #expect(loop.advance())
            usleep(2_200_000)   // past the crash-loop window
            let r = try RestartSupport.restart(f.mountpoint)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(loop.advance())
            usleep(2_200_000)
        }
        loop.stop()
        stopped = true
        #expect(loop.errors.isEmpty, "\(loop.errors.prefix(10))")
        let iterations = loop.iterations
        #expect(iterations > 6)
        let held = try FileIO.readAll(f.path("w/held"))
        #expect(held.count >= iterations * 9)
        #expect(Array(held.prefix(9)) == Array("00000000\n".utf8))
        try f.unmount()

        // The upper directory reads back the same through kernel overlayfs.
        let diff = try f.differencesFromKernelOverlay()
        #expect(diff.isEmpty, "\(diff.prefix(20).joined(separator: "\n"))")
    }

    /// A file unlinked while open keeps its data through a restart and a kill -9.
    @Test func openUnlinkedFileSurvivesRestarts() throws {
        let f = try UpperFixture()
        try f.mount()
        defer { try? f.unmount() }
        let made = open(f.path("gone"), O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        try #require(made >= 0)
        defer { close(made) }
        #expect(write(made, "kept", 4) == 4)
        #expect(unlink(f.path("gone")) == 0)
        // A lower file, copied up by the open, then unlinked.
        let lowerFile = open(f.path("etc/hosts"), O_RDWR | O_CLOEXEC)
        try #require(lowerFile >= 0)
        defer { close(lowerFile) }
        #expect(unlink(f.path("etc/hosts")) == 0 && unlink(f.path("etc/hosts2")) == 0)

        let r = try RestartSupport.restart(f.mountpoint)
        #expect(r.status == 0, "\(r.stderr)")
        usleep(2_200_000)
        try RestartSupport.killServer(f.mountpoint)

        for (fd, expected) in [(made, "kept"), (lowerFile, "hello")] {
            var buffer = [UInt8](repeating: 0, count: 16)
            let n = pread(fd, &buffer, buffer.count, 0)
            #expect(n == expected.utf8.count && String(decoding: buffer[0..<max(n, 0)], as: UTF8.self) == expected,
                    "\(expected): \(n) \(String(cString: strerror(errno)))")
            #expect(pwrite(fd, "!", 1, off_t(expected.utf8.count)) == 1, "\(String(cString: strerror(errno)))")
            var st = stat()
            #expect(fstat(fd, &st) == 0 && st.st_nlink == 0 && st.st_size == off_t(expected.utf8.count + 1))
        }
        #expect(!FileIO.exists(f.path("gone")) && !FileIO.exists(f.path("etc/hosts")))
        try f.unmount()
    }

    /// A kill -9 and a restart while a large file is being copied up (held after its first
    /// chunk by STRATA_TEST_COPYUP_GATE until the test lets it go): the open that started it
    /// succeeds, and the file is the finished copy with the write, never torn. After the kill,
    /// the OPEN the dead server had read is sent again (FUSE_NOTIFY_RESEND) and the next
    /// server copies again; on a restart, the old server finishes it before it quits.
    @Test(arguments: ["kill", "restart"])
    func copyUpInFlight(_ how: String) throws {
        let f = try UpperFixture(extraLower: "head -c 16000000 /dev/urandom > huge")
        let gate = f.temp.child("gate"), log = f.temp.child("daemon.log")
        try f.mount(extra: ["--log", log], environment: ["STRATA_TEST_COPYUP_GATE": gate])
        defer { try? f.unmount() }
        let original = try FileIO.readAll(f.path("huge"))
        let scratch = f.upper + ".work/tmp"
        func copyUpInProgress() -> Bool {
            FileIO.directoryEntries(scratch).contains { $0.hasPrefix("#") && !$0.hasPrefix("#orphan-") }
        }
        let finished = DispatchSemaphore(value: 0)
        let failure = Locked<String?>(nil)
        let huge = f.path("huge")
        Thread {
            let fd = open(huge, O_WRONLY | O_CLOEXEC)   // copies the file up
            if fd < 0 {
                failure.withLock { $0 = "open: \(String(cString: strerror(errno)))" }
            } else {
                if pwrite(fd, "HEAD", 4, 0) != 4 { failure.withLock { $0 = "pwrite: \(String(cString: strerror(errno)))" } }
                close(fd)
            }
            finished.signal()
        }.start()
        #expect(Mounts.waitUntil(seconds: 60) { copyUpInProgress() })
        if how == "kill" {
            try RestartSupport.killServer(f.mountpoint)   // the next server holds at the gate too
        } else {
            let restarted = DispatchSemaphore(value: 0)
            let result = Locked<CommandResult?>(nil)
            let mountpoint = f.mountpoint
            Thread {
                result.withLock { $0 = try? RestartSupport.restart(mountpoint) }
                restarted.signal()
            }.start()
            // The old server is told to quit while its copy-up waits.
            #expect(Mounts.waitUntil(seconds: 60) {
                (try? FileIO.readAll(log)).map { String(decoding: $0, as: UTF8.self).contains("restart: starting") } ?? false
            })
            usleep(300_000)
            try FileIO.writeAtomically(gate, [])
            restarted.wait()
            let r = result.withLock { $0 }
            #expect(r?.status == 0, "\(r?.stderr ?? "no result")")
        }
        try FileIO.writeAtomically(gate, [])
        finished.wait()
        let failed = failure.withLock { $0 }
        #expect(failed == nil, "\(failed ?? "")")
        let after = try FileIO.readAll(f.path("huge"))
        #expect(after.count == original.count)
        #expect(Array(after.prefix(4)) == Array("HEAD".utf8))
        #expect(after.dropFirst(4) == original.dropFirst(4))
        try f.unmount()
        // What the upper holds is whole: the same bytes through kernel overlayfs.
        #expect(try f.withKernelOverlay { try FileIO.readAll($0 + "/huge") } == after)
    }
}
