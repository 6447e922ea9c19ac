import StrataFuse
import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

enum RestartCommand {
    static let help = """
    usage: strata restart MOUNTPOINT

    Hands a strata mount to a newly started serving process, run from this strata program (how
    strata is upgraded under running containers). The new process opens the image first; the
    old one then stops reading requests, answers those it has read and exits, and the new one
    takes the connection over: requests in flight wait, none fails. The command returns once
    the new process answers, or fails naming why (the old one then keeps serving).

    A serving process that dies (a crash, kill -9, the OOM killer) is replaced the same way by
    the mount's supervisor; three that die again within seconds of starting end the restarts,
    and the mount answers EIO, the reason logged, until `strata restart` succeeds.
    """

    static func run(_ args: ArraySlice<String>) throws {
        let a = try Arguments(args, spec: .init(valued: [], flags: []))
        guard a.positionals.count == 1 else { throw CLIError("restart needs MOUNTPOINT (see strata restart --help)") }
        let mountpoint = FileIO.absolute(a.positionals[0])
        let socketPath = SupervisorRunDirectory.path(for: mountpoint) + "/" + FuseSupervisor.socketName
        let socket: FileDescriptor
        do { socket = try UnixSocket.connect(to: socketPath) } catch {
            throw CLIError("\(mountpoint): no strata supervisor answers (\(socketPath): \(error.message))")
        }
        defer { socket.close() }
        try UnixSocket.send(socket, [UInt8(ascii: "R")] + Array(MountSupervision.installedExecutable().utf8))
        let (answer, _) = try UnixSocket.receive(socket)
        guard answer.first == UInt8(ascii: "O") else {
            let reason = answer.isEmpty ? "the supervisor closed the connection" : String(decoding: answer.dropFirst(), as: UTF8.self)
            throw CLIError("\(mountpoint): restart failed: \(reason)")
        }
    }
}
