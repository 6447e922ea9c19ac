import StrataFS
import StrataFuse
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

/// `strata mount`'s daemon: the supervisor that holds the mount (`FuseSupervisor`) and
/// starts the process serving it, `strata mount --server-socket 3 ...` with the same
/// arguments (MountCommand's server side).
enum MountSupervision {
    static let serverSocketFlag = "--server-socket"
    static let takeoverFlag = "--server-takeover"

    static func run(_ arguments: ArraySlice<String>, mountpoint: String, ready: FileDescriptor?, logFile: String?) -> Int32 {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGCHLD)
        pthread_sigmask(SIG_BLOCK, &set, nil)   // read through the supervisor's signalfd

        var rest = Array(arguments)
        if let index = rest.firstIndex(of: Daemon.readyFlag), index + 1 < rest.count { rest.removeSubrange(index...(index + 1)) }
        // The socket flag first: `strata mount --foreground ... MOUNTPOINT` names the supervisor only.
        let serverArguments = ["mount", serverSocketFlag, String(FuseSupervisor.serverSocketDescriptor)] + rest
        let configuration = FuseSupervisor.Configuration(
            mountpoint: mountpoint, runDirectory: SupervisorRunDirectory.path(for: mountpoint),
            executable: installedExecutable(), serverArguments: serverArguments, takeoverFlag: takeoverFlag)
        return FuseSupervisor(configuration).run(onReady: {
            if let ready {
                DaemonLog.detachStartupStderr(logFile: logFile)
                Daemon.reportReady(fd: ready)
            }
        }, onStartFailure: { message in
            if let ready {
                Log.error(message)
                Daemon.reportError(fd: ready, message: message)
            } else {
                writeStandardError("strata: \(message)\n")
            }
        })
    }

    /// The path this program was started from: servers started later run what is installed
    /// there then (an upgrade), not this process's possibly replaced binary.
    static func installedExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return "/proc/self/exe" }
        var path = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if path.hasSuffix(" (deleted)") { path.removeLast(" (deleted)".count) }
        return access(path, X_OK) == 0 ? path : "/proc/self/exe"
    }
}
