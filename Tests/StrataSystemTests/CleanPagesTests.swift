import Testing
import Glibc
import StrataSystem

@Suite struct CleanPagesTests {
    /// Dropping the clean file pages of a running process loses nothing: the code and data run
    /// on (faulted in again), and resident memory goes down.
    @Test func droppingCleanPagesKeepsTheProcessWhole() throws {
        func resident() -> Int {
            let text = String(decoding: (try? FileIO.readAll("/proc/self/smaps_rollup")) ?? [], as: UTF8.self)
            let line = text.split(separator: "\n").first { $0.hasPrefix("Rss:") } ?? ""
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
        }
        let before = resident()
        let dropped = CleanPages.dropUnused()
        #expect(dropped > 0)
        #expect(resident() < before)
        // Code, relocated data and strings still work.
        let text = (0..<1000).map { String($0, radix: 16) }.joined(separator: ",")
        #expect(text.split(separator: ",").count == 1000)
        #expect(String(cString: strerror(ENOENT)) == "No such file or directory")
    }
}
