#if canImport(Glibc)
import Glibc
#endif
import CFuse
import StrataFS
import StrataSystem

/// The small process that owns a mount: it mounts, holds the /dev/fuse descriptor (the kernel
/// keeps the connection while someone does) and lends it to a serving process it starts.
/// When that process dies (crash, kill -9, OOM) it starts another, which takes the
/// connection over (FuseServer+Handover.swift): callers wait, they see no error. On a
/// restart request (`strata restart`, the control socket) it starts the new server first,
/// then tells the old one to quit and hands the descriptor over. It loads no image: its
/// memory stays a few MB.
///
/// A crash loop (`crashLimit` servers in a row dying before they answer, or within
/// `quickDeathSeconds` of it) ends the restarts: the supervisor then answers every request with EIO itself, the
/// reason logged, until a restart request succeeds or the mount goes. SIGTERM, SIGINT and
/// SIGHUP unmount (detaching a busy mount, as `FuseServer` does); an unmount from outside ends
/// the connection, and the supervisor exits with its servers.
public final class FuseSupervisor {
    public struct Configuration: Sendable {
        public var mountpoint: String
        /// Holds `supervisor.sock` (restart requests) and `server.pid`.
        public var runDirectory: String
        /// The program servers run from (`strata`), and their arguments; the socket to the
        /// supervisor is their descriptor 3. A server that takes a live connection over gets
        /// `takeoverFlag` appended.
        public var executable: String
        public var serverArguments: [String]
        public var takeoverFlag: String
        public var crashLimit = 3
        public var quickDeathSeconds = 2.0

        public init(mountpoint: String, runDirectory: String, executable: String, serverArguments: [String], takeoverFlag: String) {
            self.mountpoint = mountpoint; self.runDirectory = runDirectory; self.executable = executable
            self.serverArguments = serverArguments; self.takeoverFlag = takeoverFlag
        }
    }

    /// The control socket's name in the run directory.
    public static let socketName = "supervisor.sock"
    public static let serverPIDName = "server.pid"
    /// The descriptor a server finds its socket on.
    public static let serverSocketDescriptor: Int32 = 3

    final class Server {
        let pid: pid_t
        let socket: FileDescriptor
        let started: Double
        let takingOver: Bool
        var serving = false
        var servingSince = 0.0
        var failure: String?
        init(pid: pid_t, socket: FileDescriptor, takingOver: Bool) {
            self.pid = pid; self.socket = socket; self.takingOver = takingOver
            started = FuseSupervisor.now()
        }
    }

    enum Phase { case starting, serving, failing }

    let configuration: Configuration
    var mountpoint: String { configuration.mountpoint }
    var phase = Phase.starting
    var session: OpaquePointer?
    var fuse: Int32 = -1
    var initRequest: [UInt8] = []
    /// The server answering now (or starting to, after a crash).
    var current: Server?
    /// A server started by a restart request, not yet given the descriptor.
    var next: Server?
    /// `quit` was sent to `current`; `next` gets the descriptor when it has exited.
    var quitDeadline: Double?
    var restartClient: FileDescriptor?
    var control: FileDescriptor?
    var quickDeaths = 0
    var failBuffer: UnsafeMutableRawPointer?

    public init(_ configuration: Configuration) {
        self.configuration = configuration
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Serves until the mount is gone. `onReady` once the first server answers;
    /// `onStartFailure` with the reason if it never does (nothing is left mounted then).
    /// Returns the exit status. Call with the shutdown signals and SIGCHLD blocked.
    public func run(onReady: () -> Void, onStartFailure: (String) -> Void) -> Int32 {
        let signals: SignalDescriptor
        do { signals = try SignalDescriptor(signals: FuseServer.shutdownSignals + [SIGCHLD]) } catch {
            onStartFailure("\(mountpoint): \(error)")
            return 1
        }
        defer { signals.descriptor.close(); cleanUp() }
        do { current = try spawn(executable: configuration.executable, takingOver: false) } catch {
            onStartFailure("\(mountpoint): cannot start the serving process: \(error)")
            return 1
        }
        while true {
            var fds = [pollfd(fd: signals.descriptor.rawValue, events: Int16(POLLIN), revents: 0)]
            let fuseEvents = phase == .failing && next == nil ? Int16(POLLIN) : 0
            let fuseWatched = fuse >= 0
            if fuseWatched { fds.append(pollfd(fd: fuse, events: fuseEvents, revents: 0)) }
            let servers = [current, next].compactMap { $0 }
            for server in servers { fds.append(pollfd(fd: server.socket.rawValue, events: Int16(POLLIN), revents: 0)) }
            let listening = control   // handling a message below may open it
            if let listening { fds.append(pollfd(fd: listening.rawValue, events: Int16(POLLIN), revents: 0)) }
            let ready = poll(&fds, nfds_t(fds.count), 1000)
            if ready < 0 && errno != EINTR { Log.error("\(mountpoint): poll: \(String(cString: strerror(errno)))") }
            if let deadline = quitDeadline, Self.now() > deadline, let old = current {
                Log.warn("\(mountpoint): the old server (pid \(old.pid)) did not quit; killing it")
                kill(old.pid, SIGKILL)
                quitDeadline = nil
            }
            var index = 0
            func take() -> Int16 { defer { index += 1 }; return fds[index].revents }

            if take() & Int16(POLLIN) != 0, let signal = try? signals.next() {
                if signal == SIGCHLD {
                    if let status = reapChildren(onStartFailure: onStartFailure) { return status }
                } else {
                    Log.info("\(mountpoint): signal \(signal): unmounting")
                    return shutdown()
                }
            }
            if fuseWatched {
                let events = take()
                if events & Int16(POLLERR) != 0 { return finish() }
                if events & Int16(POLLIN) != 0 && phase == .failing && next == nil {
                    if !answerWithEIO() { return finish() }
                }
            }
            let serverEvents = servers.map { _ in take() }
            // A server reaped above is gone (its socket number may already be another's).
            for (server, events) in zip(servers, serverEvents)
            where events & Int16(POLLIN | POLLHUP) != 0 && (server === current || server === next) {
                if let status = receive(from: server, onReady: onReady, onStartFailure: onStartFailure) { return status }
            }
            if let listening, take() & Int16(POLLIN) != 0 { acceptRestartRequest(listening) }
        }
    }

    // MARK: - Servers

    func spawn(executable: String, takingOver: Bool) throws -> Server {
        let (ours, theirs) = try UnixSocket.pair()
        defer { theirs.close() }
        let arguments = configuration.serverArguments + (takingOver ? [configuration.takeoverFlag] : [])
        let options = SpawnOptions(stdin: .null, stdout: .null, stderr: .inherit,
                                   descriptors: [(theirs, Self.serverSocketDescriptor)],
                                   defaultSignals: FuseServer.shutdownSignals + [SIGCHLD, SIGPIPE])
        do {
            let child = try ChildProcess.spawn(executable, arguments, argument0: "strata", options: options)
            return Server(pid: child.pid, socket: ours, takingOver: takingOver)
        } catch {
            ours.close()
            throw error
        }
    }

    /// Handles one message of `server`; a status when the supervisor is done.
    func receive(from server: Server, onReady: () -> Void, onStartFailure: (String) -> Void) -> Int32? {
        guard let (bytes, descriptor) = try? UnixSocket.receive(server.socket) else { return nil }
        descriptor?.close()
        guard let message = HandoverMessage(bytes) else { return nil }   // closed: its exit follows
        switch message {
        case .hello(let arguments):
            if session == nil {
                guard mount(arguments: arguments) else {
                    kill(server.pid, SIGKILL)
                    waitForExit([server], seconds: 5)
                    onStartFailure(FuseError(.mountFailed, mountpoint: mountpoint).description)
                    return 1
                }
                grant(server)
            } else if server === next {
                if let old = current {
                    // The new server is ready: the old one stops reading, answers what it has
                    // read and exits; its exit hands the descriptor over (reapChildren).
                    try? UnixSocket.send(old.socket, HandoverMessage.quit.encoded)
                    quitDeadline = Self.now() + 10
                } else {
                    // A crash loop, or a crash just now: nobody serves, take over at once.
                    current = server
                    next = nil
                    grant(server)
                }
            } else {
                grant(server)
            }
        case .initRequest(let body):
            if initRequest.isEmpty { initRequest = body }
        case .serving:
            server.serving = true
            server.servingSince = Self.now()
            if phase == .starting {
                phase = .serving
                openControlSocket()   // makes the run directory
                writeServerPID(server.pid)
                onReady()
            } else if phase == .failing {
                phase = .serving
                Log.info("\(mountpoint): a new server (pid \(server.pid)) answers again")
                writeServerPID(server.pid)
            } else {
                writeServerPID(server.pid)
            }
            if server.takingOver && restartClient != nil {
                quickDeaths = 0
                replyToRestart("O")
            }
            // The code and data pages that starting a server touched stay in the page cache
            // (the server maps them too): resident stays what the idle loop uses.
            CleanPages.dropUnused()
        case .failed(let reason):
            server.failure = reason
            Log.error("\(mountpoint): server (pid \(server.pid)) failed: \(reason)")
        case .grant, .quit:
            break
        }
        return nil
    }

    func grant(_ server: Server) {
        do {
            try UnixSocket.send(server.socket, HandoverMessage.grant(initRequest: initRequest).encoded,
                                passing: FileDescriptor(rawValue: fuse))
        } catch {
            Log.error("\(mountpoint): cannot hand the mount to server \(server.pid): \(error)")
            kill(server.pid, SIGKILL)   // its exit starts another
        }
    }

    /// Reaps every child that exited; a status when the supervisor is done.
    func reapChildren(onStartFailure: (String) -> Void) -> Int32? {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return nil }
            let exit = ExitStatus(raw: status)
            for server in [current, next].compactMap({ $0 }) where server.pid == pid { readLastWords(server) }
            if let server = next, server.pid == pid {
                next = nil
                server.socket.close()
                replyToRestart("E" + "the new server did not start: \(server.failure ?? Self.describe(exit))")
                continue
            }
            guard let server = current, server.pid == pid else { continue }
            current = nil
            server.socket.close()
            let reason = server.failure ?? Self.describe(exit)
            if quitDeadline != nil {
                // A restart: the old server is gone, the new one takes over.
                quitDeadline = nil
                if let successor = next {
                    current = successor
                    next = nil
                    grant(successor)
                } else {
                    // The new server failed after the old one was told to quit: start another.
                    Log.error("\(mountpoint): the new server failed after the old one quit; starting another")
                    do { current = try spawn(executable: configuration.executable, takingOver: true) } catch {
                        enterFailing(reason: "cannot start a server: \(error)")
                    }
                }
                continue
            }
            if phase == .starting {
                onStartFailure(server.failure ?? "\(mountpoint): the serving process exited during start-up (\(Self.describe(exit)))")
                _ = shutdown()
                return 1
            }
            if mountGone() { return finish() }
            if exit.exitCode == 0 {
                // It was stopped (SIGTERM) on a mount it could not unmount: so is the mount.
                return shutdown()
            }
            // Quick: it never served, or died within seconds of serving (a request that kills
            // every server, or a broken install). Opening a large image may take long: that is
            // not held against it.
            let quick = !server.serving || Self.now() - server.servingSince < configuration.quickDeathSeconds
            quickDeaths = quick ? quickDeaths + 1 : 0
            if quickDeaths >= configuration.crashLimit {
                enterFailing(reason: reason)
                continue
            }
            Log.error("\(mountpoint): server (pid \(server.pid)) died (\(reason)); starting another")
            if next != nil { continue }   // a restart under way takes over when it is ready
            do { current = try spawn(executable: configuration.executable, takingOver: true) } catch {
                enterFailing(reason: "cannot start a server: \(error)")
            }
        }
    }

    /// What a server that has exited said last (its reason for failing), before its socket
    /// is closed: the exit may be seen before the message.
    func readLastWords(_ server: Server) {
        while true {
            var fds = [pollfd(fd: server.socket.rawValue, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, 0) == 1, fds[0].revents & Int16(POLLIN) != 0,
                  let (bytes, descriptor) = try? UnixSocket.receive(server.socket) else { return }
            descriptor?.close()
            guard let message = HandoverMessage(bytes) else { return }
            if case .failed(let reason) = message {
                server.failure = reason
                Log.error("\(mountpoint): server (pid \(server.pid)) failed: \(reason)")
            }
        }
    }

    static func describe(_ status: ExitStatus) -> String {
        if let signal = status.signal { return "killed by signal \(signal) (\(String(cString: strsignal(signal))))" }
        return "exit status \(status.code)"
    }

    // MARK: - Restart requests

    func openControlSocket() {
        let path = configuration.runDirectory + "/" + Self.socketName
        do {
            try FileIO.makeDirectories(configuration.runDirectory, mode: 0o700)
            control = try UnixSocket.listen(at: path)
        } catch {
            Log.warn("\(mountpoint): no restart socket at \(path): \(error)")
        }
    }

    /// A request is one message: `R` and the path of the program the new server runs from
    /// (the caller's, which is how an upgrade reaches a mount). The answer comes when the new
    /// server answers: `O`, or `E` and why not.
    func acceptRestartRequest(_ listener: FileDescriptor) {
        guard let client = try? UnixSocket.accept(listener, receiveTimeout: 2) else { return }
        guard let (bytes, _) = try? UnixSocket.receive(client), bytes.first == UInt8(ascii: "R") else {
            client.close()
            return
        }
        guard restartClient == nil, next == nil, quitDeadline == nil, current == nil || current?.serving == true else {
            try? UnixSocket.send(client, Array("Ea restart or a recovery is under way; try again".utf8))
            client.close()
            return
        }
        var executable = String(decoding: bytes.dropFirst(), as: UTF8.self)
        if executable.isEmpty || access(executable, X_OK) != 0 { executable = configuration.executable }
        restartClient = client
        do {
            next = try spawn(executable: executable, takingOver: true)
            Log.info("\(mountpoint): restart: starting a new server (\(executable))")
        } catch {
            replyToRestart("Ecannot start a server: \(error)")
        }
    }

    func replyToRestart(_ answer: String) {
        guard let client = restartClient else { return }
        try? UnixSocket.send(client, Array(answer.utf8))
        client.close()
        restartClient = nil
    }

    func writeServerPID(_ pid: pid_t) {
        try? FileIO.writeAtomically(configuration.runDirectory + "/" + Self.serverPIDName, Array("\(pid)\n".utf8), durable: false)
    }

    // MARK: - The mount

    func mount(arguments: [String]) -> Bool {
        var args = fuse_args(argc: 0, argv: nil, allocated: 0)
        for argument in arguments { fuse_opt_add_arg(&args, argument) }
        var ops = fuse_lowlevel_ops()   // this session never answers a request
        let created = fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size, nil)
        fuse_opt_free_args(&args)
        guard let created else { return false }
        guard fuse_session_mount(created, mountpoint) == 0 else {
            fuse_session_destroy(created)
            return false
        }
        session = created
        fuse = fuse_session_fd(created)
        return true
    }

    /// The connection has ended (unmounted, or aborted): POLLERR on its descriptor.
    func mountGone() -> Bool {
        guard fuse >= 0 else { return true }
        var fds = [pollfd(fd: fuse, events: 0, revents: 0)]
        return poll(&fds, 1, 0) == 1 && fds[0].revents & Int16(POLLERR) != 0
    }

    /// The mount went away: the servers read ENODEV and exit.
    func finish() -> Int32 {
        waitForExit([current, next].compactMap { $0 }, seconds: 10)
        current = nil
        next = nil
        return 0
    }

    /// Unmounts: gracefully if nothing uses the mount, else the servers quit and the mount is
    /// detached and its connection closed (as a stopped `FuseServer` does).
    func shutdown() -> Int32 {
        let servers = [current, next].compactMap { $0 }
        if session != nil && !mountGone() {
            let unmounted = geteuid() == 0 ? (try? FileSystemMount.unmount(mountpoint)) != nil
                : FuseMount.run("/usr/bin/fusermount3", ["-u", mountpoint]) == 0
            if !unmounted {
                for server in servers { try? UnixSocket.send(server.socket, HandoverMessage.quit.encoded) }
            }
        } else {
            for server in servers { kill(server.pid, SIGTERM) }
        }
        waitForExit(servers, seconds: 5)
        current = nil
        next = nil
        return 0
    }

    /// Waits up to `seconds` for the servers, then kills what is left.
    func waitForExit(_ servers: [Server], seconds: Double) {
        var left = servers.map(\.pid)
        let deadline = Self.now() + seconds
        while !left.isEmpty {
            left.removeAll { pid in
                var status: Int32 = 0
                return waitpid(pid, &status, WNOHANG) != 0
            }
            if left.isEmpty { break }
            if Self.now() > deadline {
                for pid in left { kill(pid, SIGKILL) }
                for pid in left { var status: Int32 = 0; _ = waitpid(pid, &status, 0) }
                break
            }
            usleep(10_000)
        }
        for server in servers { server.socket.close() }
    }

    func cleanUp() {
        if let session {
            fuse_session_unmount(session)   // closes the descriptor; detaches a mount still there
            fuse_session_destroy(session)
            self.session = nil
            fuse = -1
        }
        replyToRestart("Ethe mount is gone")
        control?.close()
        _ = unlink(configuration.runDirectory + "/" + Self.socketName)
        _ = unlink(configuration.runDirectory + "/" + Self.serverPIDName)
        _ = rmdir(configuration.runDirectory)   // only if nobody else keeps files there
        failBuffer?.deallocate()
    }

    // MARK: - Crash loop

    func enterFailing(reason: String) {
        phase = .failing
        Log.error("\(mountpoint): the server died \(quickDeaths) times in a row at once (within \(Int(configuration.quickDeathSeconds)) s of serving) (last: \(reason)); no more restarts: the mount answers EIO until `strata restart \(mountpoint)` succeeds or it is unmounted")
        quickDeaths = 0
        _ = strata_notify_resend(fuse)   // what the dead server held comes here, to be failed too
    }

    static let failBufferSize = (1 << 20) + 65536

    /// Reads one request and answers EIO (FORGETs and INTERRUPTs take no answer). false when
    /// the connection has ended.
    func answerWithEIO() -> Bool {
        let buffer = failBuffer ?? UnsafeMutableRawPointer.allocate(byteCount: Self.failBufferSize, alignment: 16)
        failBuffer = buffer
        let n = read(fuse, buffer, Self.failBufferSize)
        if n < 0 { return errno == EINTR || errno == EAGAIN || errno == ENOENT }
        guard n >= MemoryLayout<fuse_in_header>.size else { return true }
        let header = buffer.load(as: fuse_in_header.self)
        switch header.opcode {
        case FUSE_FORGET.rawValue, FUSE_BATCH_FORGET.rawValue, FUSE_INTERRUPT.rawValue: return true
        default: break
        }
        var reply = fuse_out_header(len: UInt32(MemoryLayout<fuse_out_header>.size), error: -EIO, unique: header.unique)
        _ = write(fuse, &reply, MemoryLayout<fuse_out_header>.size)
        return true
    }
}
