import Testing
import Glibc
import StrataSystem

/// The descriptor passing a mount's supervisor and its server use (SCM_RIGHTS).
@Suite struct UnixSocketTests {
    @Test func aPassedDescriptorReadsTheSameFile() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.child("file")
        try FileIO.writeAtomically(path, Array("passed".utf8))
        let (a, b) = try UnixSocket.pair()
        defer { a.close(); b.close() }
        let file = try FileDescriptor.open(path, O_RDONLY | O_CLOEXEC)
        try UnixSocket.send(a, Array("F".utf8), passing: file)
        file.close()   // the copy in flight keeps the file open
        let (bytes, received) = try UnixSocket.receive(b)
        #expect(bytes == Array("F".utf8))
        let descriptor = try #require(received)
        defer { descriptor.close() }
        var buffer = [UInt8](repeating: 0, count: 16)
        let n = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0, at: 0) }
        #expect(Array(buffer[0..<n]) == Array("passed".utf8))
        #expect(fcntl(descriptor.rawValue, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test func messagesKeepTheirBoundariesAndCloseReadsEmpty() throws {
        let (a, b) = try UnixSocket.pair()
        defer { b.close() }
        try UnixSocket.send(a, [1, 2, 3])
        try UnixSocket.send(a, [4])
        #expect(try UnixSocket.receive(b).bytes == [1, 2, 3])
        let second = try UnixSocket.receive(b)
        #expect(second.bytes == [4] && second.descriptor == nil)
        a.close()
        #expect(try UnixSocket.receive(b).bytes.isEmpty)
    }

    @Test func listenConnectAccept() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.child("s.sock")
        let listener = try UnixSocket.listen(at: path)
        defer { listener.close() }
        let client = try UnixSocket.connect(to: path)
        defer { client.close() }
        let server = try UnixSocket.accept(listener)
        defer { server.close() }
        try UnixSocket.send(client, Array("R".utf8))
        #expect(try UnixSocket.receive(server).bytes == Array("R".utf8))
        #expect(throws: SystemError.self) { try UnixSocket.connect(to: scratch.child("none.sock")) }
    }

    /// A peer that connects and says nothing does not hold the receiver for ever.
    @Test func receiveTimeoutEndsASilentPeer() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.child("t.sock")
        let listener = try UnixSocket.listen(at: path)
        defer { listener.close() }
        let client = try UnixSocket.connect(to: path)
        defer { client.close() }
        let server = try UnixSocket.accept(listener, receiveTimeout: 1)
        defer { server.close() }
        do {
            _ = try UnixSocket.receive(server)
            Issue.record("a receive from a silent peer returned")
        } catch {
            #expect(error.code == EAGAIN || error.code == EWOULDBLOCK)
        }
    }
}
