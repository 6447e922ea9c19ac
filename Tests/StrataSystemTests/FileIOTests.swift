import Testing
import Glibc
@testable import StrataSystem

@Suite struct FileIOTests {
    @Test func atomicWriteThenReadBack() throws {
        let dir = "/tmp/strata-fileio-\(getpid())"
        try FileIO.makeDirectories(dir + "/a/b")
        defer { _ = system("rm -rf \(dir)") }
        let path = dir + "/a/b/file"
        try FileIO.writeAtomically(path, Array("hello".utf8))
        #expect(try FileIO.readAll(path) == Array("hello".utf8))
        try FileIO.writeAtomically(path, [1, 2, 3])
        #expect(try FileIO.readAll(path) == [1, 2, 3])
        let mapped = try MappedFile(path: path)
        #expect(Array(mapped.bytes) == [1, 2, 3])
    }

    @Test func missingFileNamesPath() {
        #expect(throws: SystemError.self) { try FileIO.readAll("/nonexistent/strata") }
        do { _ = try FileIO.readAll("/nonexistent/strata") } catch {
            #expect("\(error)".contains("/nonexistent/strata"))
        }
    }
}
