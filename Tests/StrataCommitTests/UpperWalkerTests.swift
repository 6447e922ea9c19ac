#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import StrataCommit
import StrataSystem
import StrataTestSupport

/// Uppers made by hand in overlayfs's format (whiteout = char 0/0, trusted.overlay.* xattrs);
/// the integration tests use uppers the kernel made.
@Suite(.enabled(if: getuid() == 0, "whiteouts (mknod) and trusted.* xattrs need root"))
struct UpperWalkerTests {
    func names(_ items: [LayerItem]) -> [String] {
        items.map { item in
            let p = String(decoding: item.path, as: UTF8.self)
            switch item.kind {
            case .whiteout: return p + " (whiteout)"
            case .opaqueMarker: return p + " (opaque)"
            case .entry: return p
            }
        }
    }

    func sh(_ script: String) throws { try Command.check("/bin/sh", ["-c", "set -e; " + script]) }

    @Test func directoryThenOpaqueThenWhiteoutsThenTheRestByName() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let u = temp.path
        try sh("""
            cd \(u); mkdir -p b/z a; touch a/file c; mknod b/.x c 0 0; mknod b/0 c 0 0; touch b/a
            mknod zz c 0 0; mkdir o; touch o/f; mknod o/gone c 0 0
            """)
        try setExtendedAttribute(path: u + "/o", name: "trusted.overlay.opaque", value: Array("y".utf8))
        try setExtendedAttribute(path: u + "/a", name: "trusted.overlay.origin", value: [1, 2])
        var walker = UpperWalker(upperRoot: u, lowerRoot: nil)
        #expect(names(try walker.walk()) == [
            ".wh.zz (whiteout)",
            "a", "a/file",
            "b", "b/.wh..x (whiteout)", "b/.wh.0 (whiteout)", "b/a", "b/z",
            "c",
            "o", "o/.wh..wh..opq (opaque)", "o/f",
        ])
    }

    @Test func renamedDirectoryWithoutALowerViewIsAnError() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        try FileIO.makeDirectories(temp.child("new"))
        try setExtendedAttribute(path: temp.child("new"), name: "trusted.overlay.redirect", value: Array("old".utf8))
        #expect(try OverlayUpper.needsLower(root: temp.path))
        var walker = UpperWalker(upperRoot: temp.path, lowerRoot: nil)
        #expect(throws: CommitError.self) { try walker.walk() }
    }

    @Test func renamedDirectoryIsMergedFromTheLower() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        try sh("""
            cd \(temp.path); mkdir -p lower/old/keep lower/old/sub upper/new/sub
            touch lower/old/a lower/old/gone lower/old/keep/k lower/old/sub/s upper/new/b upper/new/sub/t
            mknod upper/new/gone c 0 0; mknod upper/old c 0 0
            """)
        try setExtendedAttribute(path: temp.child("upper/new"), name: "trusted.overlay.redirect", value: Array("old".utf8))
        var walker = UpperWalker(upperRoot: temp.child("upper"), lowerRoot: temp.child("lower"))
        #expect(names(try walker.walk()) == [
            ".wh.old (whiteout)",
            "new", "new/.wh..wh..opq (opaque)", "new/a", "new/b", "new/keep", "new/keep/k", "new/sub", "new/sub/s", "new/sub/t",
        ])
    }

    @Test func aFileNamedLikeAWhiteoutIsRefused() throws {
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        try sh("cd \(temp.path); mkdir d; touch d/.wh.trick")
        var walker = UpperWalker(upperRoot: temp.path, lowerRoot: nil)
        #expect(throws: CommitError.self) { try walker.walk() }
    }
}
