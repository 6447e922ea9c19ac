#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataOCI
import StrataSystem
import StrataTestSupport

/// The supervisor's files for a mount (SupervisorRunDirectory in the strata executable).
enum RestartSupport {
    static func runDirectory(_ mountpoint: String) -> String {
        "/run/strata/mounts/" + String(Digest.sha256(of: Array(mountpoint.utf8)).hex.prefix(16))
    }

    /// The process serving the mount now (the supervisor writes it once a server answers).
    static func serverPID(_ mountpoint: String) -> pid_t? {
        guard let bytes = try? FileIO.readAll(runDirectory(mountpoint) + "/server.pid") else { return nil }
        return pid_t(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The supervisor: `strata mount --foreground ... MOUNTPOINT` (servers have --server-socket first).
    static func supervisorPID(_ mountpoint: String) -> pid_t? {
        let r = try? Command.run("/usr/bin/pgrep", ["-f", "^strata mount --foreground.* \(mountpoint)( |$)"])
        return r.flatMap { pid_t($0.stdoutString.split(separator: "\n").first ?? "") }
    }

    static func alive(_ pid: pid_t) -> Bool {
        // A zombie is dead for this purpose: its parent (not us) reaps it.
        guard let stat = try? FileIO.readAll("/proc/\(pid)/stat") else { return false }
        let text = String(decoding: stat, as: UTF8.self)
        guard let close = text.lastIndex(of: ")") else { return false }
        return !text[close...].hasPrefix(") Z")
    }

    /// kill -9 of the serving process; returns once another one serves. The new server must
    /// then live past the supervisor's crash-loop window before the next kill (pacing, not an
    /// assertion).
    static func killServer(_ mountpoint: String) throws {
        guard let old = serverPID(mountpoint) else { throw HarnessError("no server.pid for \(mountpoint)") }
        kill(old, SIGKILL)
        guard Mounts.waitUntil(seconds: 60, { (serverPID(mountpoint).map { $0 != old && alive($0) }) ?? false }) else {
            throw HarnessError("no new server for \(mountpoint) after kill -9 of \(old)")
        }
    }

    static func move(_ from: String, _ to: String) throws {
        guard rename(from, to) == 0 else { throw HarnessError("rename \(from): \(String(cString: strerror(errno)))") }
    }

    static func restart(_ mountpoint: String, binary: String? = nil) throws -> CommandResult {
        if let binary { return try Command.run(binary, ["restart", mountpoint], timeout: 120) }
        return try StrataBinary.subcommand("restart", [mountpoint])
    }
}

/// A reader that loops over a mount on its own thread until stopped: reads whole files (page
/// cache dropped first, so the server is asked), preads a file held open since the start,
/// lists directories, stats the file system, looks up absent names. Every result that differs
/// from the expected one is an error (ENOTCONN, EIO, a short read, other bytes).
final class MountReaderLoop: @unchecked Sendable {
    let mountpoint: String
    let files: [String: [UInt8]]
    let directories: [String: Set<String>]
    let held: (path: String, bytes: [UInt8])
    private let lock = NSLock()
    private var stopFlag = false
    private var errorList: [String] = []
    private var count = 0
    /// (start, seconds) of every operation, for the stall measurement.
    private var timings: [(Double, Double)] = []
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    init(mountpoint: String, files: [String: [UInt8]], directories: [String: Set<String>], held: String) {
        self.mountpoint = mountpoint
        self.files = files
        self.directories = directories
        self.held = (held, files[held] ?? [])
    }

    var errors: [String] { lock.withLock { errorList } }
    var iterations: Int { lock.withLock { count } }

    func start() throws {
        let fd = open(mountpoint + "/" + held.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw HarnessError("cannot open \(held.path): \(String(cString: strerror(errno)))") }
        let thread = Thread { [self] in
            loop(heldFD: fd)
            close(fd)
            done.signal()
        }
        self.thread = thread
        thread.start()
    }

    /// Waits until the loop has done `more` further iterations (false if it made none in a minute).
    @discardableResult
    func advance(by more: Int = 2) -> Bool {
        let target = iterations + more
        return Mounts.waitUntil(seconds: 60) { iterations >= target }
    }

    func stop() {
        lock.withLock { stopFlag = true }
        done.wait()
    }

    /// The longest operation that started within `window` seconds after each of `events`.
    func stalls(after events: [Double], window: Double = 2) -> [Double] {
        let all = lock.withLock { timings }
        return events.map { event in
            all.filter { $0.0 >= event - 0.05 && $0.0 <= event + window }.map(\.1).max() ?? 0
        }
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    private func fail(_ message: String) { lock.withLock { errorList.append(message) } }

    private func timed(_ body: () -> Void) {
        let start = Self.now()
        body()
        let seconds = Self.now() - start
        lock.withLock { timings.append((start, seconds)) }
    }

    private func loop(heldFD: Int32) {
        var iteration = 0
        while !lock.withLock({ stopFlag }) {
            iteration += 1
            for (path, expected) in files.sorted(by: { $0.key < $1.key }) {
                timed { readWhole(path, expected) }
            }
            timed {
                // The held file, from the descriptor opened before any restart.
                let offset = held.bytes.count / 2
                var buffer = [UInt8](repeating: 0, count: max(held.bytes.count - offset, 1))
                _ = posix_fadvise(heldFD, 0, 0, POSIX_FADV_DONTNEED)
                let n = pread(heldFD, &buffer, buffer.count, off_t(offset))
                if n < 0 { fail("pread held \(held.path): \(String(cString: strerror(errno)))") }
                else if Array(buffer[0..<n]) != Array(held.bytes[offset...]) { fail("pread held \(held.path): \(n) bytes, other content") }
            }
            for (path, names) in directories {
                timed {
                    guard let listed = try? FileIO.names(in: mountpoint + "/" + path) else {
                        fail("list \(path): \(String(cString: strerror(errno)))"); return
                    }
                    let got = Set(listed.map { String(decoding: $0, as: UTF8.self) })
                    if got != names { fail("list \(path): \(got.sorted()) != \(names.sorted())") }
                }
            }
            timed {
                var sv = statvfs()
                if statvfs(mountpoint, &sv) != 0 { fail("statvfs: \(String(cString: strerror(errno)))") }
            }
            timed {
                // A name never asked before: the lookup reaches the server.
                var st = stat()
                let absent = mountpoint + "/absent-\(getpid())-\(iteration)"
                if lstat(absent, &st) == 0 || errno != ENOENT { fail("lookup of an absent name: \(String(cString: strerror(errno)))") }
            }
            lock.withLock { count += 1 }
        }
    }

    private func readWhole(_ path: String, _ expected: [UInt8]) {
        let fd = open(mountpoint + "/" + path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { fail("open \(path): \(String(cString: strerror(errno)))"); return }
        defer { close(fd) }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        var got: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 17)
        while true {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 { fail("read \(path): \(String(cString: strerror(errno)))"); return }
            if n == 0 { break }
            got += buffer[0..<n]
        }
        if got != expected { fail("read \(path): \(got.count) bytes of \(expected.count), other content") }
    }
}
