#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import StrataOCI
import StrataSystem
import StrataTestSupport

/// A commit killed after each step (STRATA_COMMIT_CRASH_AFTER makes it SIGKILL itself) must
/// leave the layout as it was for every reader: old tags resolve, umoci reads them, the new tag
/// is absent; a later commit then completes.
@Suite(.enabled(if: OverlayCommitFixture.available, "needs root, umoci, kernel overlayfs and the strata binary"),
       .serialized, .mountTimeLimit)
struct CommitCrashTests {
    @Test(arguments: ["layer", "blob", "config", "manifest"])
    func interruptedCommitLeavesOldTagsValid(point: String) throws {
        let f = try OverlayCommitFixture()
        let expected = try f.change(CommitTests.everyKindOfChange)
        let indexBefore = try FileIO.readAll("\(f.layout)/index.json")
        let baseBefore = try ImageResolver.resolve(reference: "\(f.layout):base").manifestDigest

        var env = ProcessInfo.processInfo.environment
        env["STRATA_COMMIT_CRASH_AFTER"] = point
        // The temporary lower mount goes below the fixture, which unmounts whatever it holds.
        env["TMPDIR"] = f.temp.path
        let crashed = try f.commit("new", environment: env)
        #expect(crashed.status == 128 + SIGKILL, "\(crashed.status) \(crashed.stderr)")
        let leftMounted = MountTable.mounts(under: f.temp.path)
        if point == "layer" {
            // Killed while reading the lower: its mount stays, and so does the temporary blob.
            for m in leftMounted { try Mounts.forceUnmount(m) }
            #expect(try Self.temporaryBlobs(f.layout).count == 1)
        } else {
            // The lower mount is released before anything is published.
            #expect(leftMounted.isEmpty)
            #expect(try Self.temporaryBlobs(f.layout).isEmpty)
        }

        #expect(try FileIO.readAll("\(f.layout)/index.json") == indexBefore)
        #expect(try ImageResolver.resolve(reference: "\(f.layout):base").manifestDigest == baseBefore)
        #expect(throws: OCIError.self) { try ImageResolver.resolve(reference: "\(f.layout):new") }
        let bundle = f.temp.child("after-crash")
        try Umoci.unpack(layout: f.layout, tag: "base", into: bundle)
        try Umoci.removeBundle(bundle)

        let retried = try f.commit("new")
        #expect(retried.succeeded, "\(retried.stderr)")
        #expect(try f.umociDifferences("new", expected: expected) == [])
    }

    static func temporaryBlobs(_ layout: String) throws -> [String] {
        let listing = try Command.check("/bin/ls", ["-A", "\(layout)/blobs/sha256"]).stdoutString
        return listing.split(separator: "\n").map(String.init).filter { $0.hasPrefix(".tmp.") }
    }
}
