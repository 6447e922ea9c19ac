import StrataFS
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// Where the mount daemon's log goes, and its process name.
enum DaemonLog {
    static func configure(file: String?, syslog: Bool, level: Log.Level) throws {
        // Run through /proc/self/exe the kernel names the process "exe"; `ps -e` and top show that.
        if let comm = try? FileDescriptor.open("/proc/self/comm", O_WRONLY | O_CLOEXEC) {
            try? comm.writeAll(Array("strata".utf8))
            comm.close()
        }
        if let file {
            let fd = try FileDescriptor.open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, mode: 0o640)
            Log.configure(level: level, sink: .descriptor(fd.rawValue))
        } else if syslog {
            Log.configure(level: level, sink: .syslog)
        } else {
            Log.configure(level: level, sink: .descriptor(2))
        }
    }

    /// Points stderr at the log file (libfuse's own messages land there) or /dev/null.
    static func detachStartupStderr(logFile: String?) {
        guard let target = try? FileDescriptor.open(logFile ?? "/dev/null", O_WRONLY | O_APPEND | O_CLOEXEC) else { return }
        dup2(target.rawValue, 2)
        target.close()
    }
}

/// An unlinked temporary file the starting daemon writes its stderr to.
final class StartupErrors {
    let descriptor: Int32

    init() throws {
        let parent = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(parent)/strata-mount-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemError(code: errno, operation: "mkstemp", path: parent) }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // only the daemon's dup2 of it as stderr goes on
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        descriptor = fd
    }

    func close() { _ = Glibc.close(descriptor) }

    /// What the daemon wrote, one line per message, without the log's own prefix.
    var lines: [String] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        var offset: off_t = 0
        while bytes.count < 65536 {
            let n = pread(descriptor, &buffer, buffer.count, offset)
            if n <= 0 { break }
            bytes += buffer[0..<n]
            offset += off_t(n)
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").map { String($0).trimmingWhitespace }
            .filter { !$0.isEmpty }
    }

    /// The daemon's one-line error, with what fusermount3 or libfuse printed in place of a guess.
    func explain(_ message: String, mountpoint: String) -> String {
        var said: [String] = []
        for line in lines where !message.contains(line) && !said.contains(line) { said.append(line) }
        guard !said.isEmpty else { return message }
        if message.contains("FUSE mount failed") {
            return "\(mountpoint): FUSE mount failed: " + said.joined(separator: "; ")
        }
        return message + " (" + said.joined(separator: "; ") + ")"
    }
}
