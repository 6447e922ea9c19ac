#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// The snapshotter life cycle on real mounts, as containerd's snapshotter test suite walks it:
/// prepare/commit chains several deep, views of committed snapshots, the remove rules, usage
/// figures, concurrent prepares on one parent, gc, and commits interrupted by a crash.
@Suite(.enabled(if: SnapshotStoreFixture.available, "needs root, /dev/fuse and the strata binary"), .serialized, .mountTimeLimit)
struct SnapshotLifecycleTests {
    /// A two-layer base image: /etc/hello, /etc/gone, /data/base.
    static func baseImage(_ store: SnapshotStoreFixture) throws -> String {
        let builder = try ImageBuilder(layout: store.temp.child("image"))
        try builder.addLayer(entries: [Items.dir("etc"), Items.file("etc/hello", "hello\n"), Items.file("etc/gone", "x\n")])
        try builder.addLayer(entries: [Items.dir("data"), Items.file("data/base", "base\n")])
        try builder.write(tag: "v1")
        return builder.reference("v1")
    }

    static func read(_ path: String) -> String? {
        (try? FileIO.readAll(path)).map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func prepareCommitChainThreeDeepThenView() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        #expect(try s.check(["import", try Self.baseImage(s), "base"]).hasSuffix("base\n"))
        var parent = "base"
        for level in 1...3 {
            let key = "active-\(level)"
            try s.check(["prepare", key, parent])
            let rootfs = try s.mount(key)
            // Each level sees everything below it.
            #expect(Self.read(rootfs + "/etc/hello") == "hello\n")
            for below in 1..<level { #expect(Self.read(rootfs + "/level\(below)") == "\(below)\n", "level \(level)") }
            try FileIO.writeAtomically(rootfs + "/level\(level)", Array("\(level)\n".utf8))
            if level == 2 { #expect(unlink(rootfs + "/etc/gone") == 0) }
            if level == 3 { try FileIO.writeAtomically(rootfs + "/data/base", Array("changed\n".utf8)) }
            try s.check(["commit", "--message", "level \(level)", "layer-\(level)", key])
            #expect(!Mounts.isMounted(rootfs))   // commit unmounted it
            #expect(try s.run(["stat", key]).status == 1)
            parent = "layer-\(level)"
        }
        try s.check(["view", "v", "layer-3"])
        let view = try s.mount("v")
        #expect(Self.read(view + "/level1") == "1\n" && Self.read(view + "/level3") == "3\n")
        #expect(Self.read(view + "/data/base") == "changed\n")
        #expect(!FileIO.exists(view + "/etc/gone"))
        #expect(Self.read(view + "/etc/hello") == "hello\n")
        #expect(open(view + "/new", O_WRONLY | O_CREAT, 0o644) == -1 && errno == EROFS)
        // A view of a middle snapshot does not see what came after.
        try s.check(["view", "v1", "layer-1"])
        let early = try s.mount("v1")
        #expect(FileIO.exists(early + "/etc/gone") && !FileIO.exists(early + "/level2"))
        // The chain image mounts with plain `strata mount` too.
        let image: String = try field(s.statJSON("layer-3"), "image")
        let plain = try MountGuard(image: image, mountpoint: s.temp.child("plain"), extraArgs: ["--cache", s.root + "/cache"])
        #expect(Self.read(plain.mountpoint + "/level3") == "3\n")
        try plain.unmount()
        try s.close()
    }

    @Test func removeRulesAndUsageFigures() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        try s.check(["import", try Self.baseImage(s), "base"])
        try s.check(["prepare", "a", "base"])
        let rootfs = try s.mount("a")
        try FileIO.makeDirectories(rootfs + "/dir")
        try FileIO.writeAtomically(rootfs + "/dir/blob", [UInt8](repeating: 7, count: 100_000))
        let usage = try jsonObject(s.check(["usage", "--json", "a"]))
        #expect(usage["inodes"] as? Int == 3)   // upper root, dir, dir/blob
        #expect((usage["size"] as? Int ?? 0) >= 100_000)
        try s.check(["commit", "c", "a"])
        let committed = try jsonObject(s.check(["usage", "--json", "c"]))
        #expect(committed["inodes"] as? Int == 2)   // dir/, dir/blob
        let layerSize: Int = try field(field(s.statJSON("c"), "layer", as: [String: Any].self), "size")
        #expect(committed["size"] as? Int == layerSize)

        try s.check(["prepare", "child", "c"])
        let childRoot = try s.mount("child")
        let refused = try s.run(["remove", "c"])
        #expect(refused.status == 1 && refused.stderr.contains("has children") && refused.stderr.contains("\"child\""))
        #expect(refused.stderr.split(separator: "\n").count == 1)
        let notActive = try s.run(["commit", "x", "c"])
        #expect(notActive.status == 1 && notActive.stderr.contains("not active"))
        try s.check(["remove", "child"])
        #expect(!Mounts.isMounted(childRoot))
        try s.check(["remove", "c"])
        #expect(try s.run(["stat", "c"]).stderr.contains("does not exist"))
        #expect(try s.check(["check"]) == "ok\n")
        let gc = try s.gc()
        #expect(gc.contains("blobs removed        3"))
        try s.close()
    }

    /// containerd's concurrent-prepare case: many processes prepare on one parent at once;
    /// every one succeeds with its own snapshot, and their writes stay apart.
    @Test func concurrentPreparesOnOneParent() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        try s.check(["import", try Self.baseImage(s), "base"])
        let count = 6
        let results = SnapshotTestBox([Int: CommandResult]())
        DispatchQueue.concurrentPerform(iterations: count) { i in
            let r = try? s.run(["prepare", "c\(i)", "base"])
            results.with { $0[i] = r }
        }
        for i in 0..<count {
            let r = results.value[i]
            #expect(r?.succeeded == true, "prepare c\(i): \(r?.stderr ?? "did not run")")
        }
        let ids = try (0..<count).map { i -> Int in try field(s.statJSON("c\(i)"), "id") }
        #expect(Set(ids).count == count)
        // Mount them concurrently too, write apart, and read back.
        let mounted = SnapshotTestBox([Int: String]())
        DispatchQueue.concurrentPerform(iterations: count) { i in
            if let m = try? s.mount("c\(i)") { mounted.with { $0[i] = m } }
        }
        #expect(mounted.value.count == count)
        for (i, m) in mounted.value { try FileIO.writeAtomically(m + "/who", Array("\(i)\n".utf8)) }
        for (i, m) in mounted.value { #expect(Self.read(m + "/who") == "\(i)\n") }
        #expect(try s.check(["check"]) == "ok\n")
        try s.close()
    }

    @Test func crashedCommitLeavesAConsistentStore() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        try s.check(["import", try Self.baseImage(s), "base"])
        try s.check(["prepare", "a", "base"])
        let rootfs = try s.mount("a")
        try FileIO.writeAtomically(rootfs + "/f", Array("f\n".utf8))

        var env = ProcessInfo.processInfo.environment
        env["STRATA_SNAPSHOT_CRASH_AFTER"] = "layer"
        let crashed = try s.run(["commit", "c", "a"], environment: env)
        #expect(crashed.status == 128 + SIGKILL)
        // Layer and tag stored, record not: "a" is still active, the tag is a leftover.
        let check = try s.run(["check"])
        #expect(check.status == 0 && check.stdoutString.contains("leftover: tag snap-"), "\(check.stdoutString)")
        #expect(try s.statJSON("a")["kind"] as? String == "active")

        env["STRATA_SNAPSHOT_CRASH_AFTER"] = "metadata"
        let second = try s.run(["commit", "c", "a"], environment: env)
        #expect(second.status == 128 + SIGKILL)
        #expect(try s.statJSON("c")["kind"] as? String == "committed")
        #expect(try s.run(["stat", "a"]).status == 1)
        #expect(try s.check(["check"]).contains("leftover: \(s.root)/snapshots/"))
        let gc = try s.gc()
        #expect(gc.contains("directory removed"))
        #expect(try s.check(["check"]) == "ok\n")
        try s.check(["view", "v", "c"])
        #expect(Self.read(try s.mount("v") + "/f") == "f\n")
        try s.close()
    }

    @Test func gcHonoursTheCacheLimit() throws {
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        try s.check(["import", try Self.baseImage(s), "base"])
        let indexes = s.root + "/cache/index/sha256"
        #expect(SnapshotDirListing.names(indexes).count == 2)
        let out = try s.gc(["--cache-max", "0"])
        #expect(out.contains("cache files evicted  2"), "\(out)")
        #expect(SnapshotDirListing.names(indexes).isEmpty)
        // Mounting rebuilds what was evicted; a mounted snapshot's layers are then kept.
        try s.check(["prepare", "a", "base"])
        #expect(Self.read(try s.mount("a") + "/etc/hello") == "hello\n")
        #expect(try s.gc(["--cache-max", "0"]).contains("cache files evicted  0"))
        #expect(SnapshotDirListing.names(indexes).count == 2)
        #expect(SnapshotDirListing.names(s.root + "/cache/tree/sha256").count == 1)   // its merged tree too
        let bad = try Command.run(try StrataBinary.path(), ["gc", "--root", s.root, "--cache-max", "lots"])
        #expect(bad.status == 1 && bad.stderr.contains("--cache-max"))
        try s.close()
    }
}

/// The command line: one-line errors naming what is wrong, options checked per subcommand.
@Suite(.enabled(if: StrataBinary.isBuilt, "needs the strata binary"), .mountTimeLimit)
struct SnapshotCommandLineTests {
    @Test func errorsAreOneLineAndNameTheProblem() throws {
        let s = try SnapshotStoreFixture()
        let cases: [([String], String)] = [
            ([], "needs a subcommand"),
            (["frobnicate"], "unknown snapshot subcommand 'frobnicate'"),
            (["prepare"], "snapshot prepare needs KEY [PARENT]"),
            (["list", "--compression", "zstd"], "option --compression does not go with snapshot list"),
            (["remove", "--json", "k"], "option --json does not go with snapshot remove"),
            (["prepare", "--label", "novalue", "k"], "label \"novalue\" is not KEY=VALUE"),
            (["stat", "ghost"], "snapshot \"ghost\" does not exist"),
            (["prepare", "k", "ghost"], "snapshot \"ghost\" does not exist"),
            (["commit", "--compression", "lzma", "n", "k"], "unknown compression \"lzma\""),
        ]
        for (args, message) in cases {
            let r = try s.run(args)
            #expect(r.status != 0, "\(args)")
            #expect(r.stderr.hasPrefix("strata: ") && r.stderr.contains(message), "\(args): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
        let help = try StrataBinary.run(["snapshot", "prepare", "--help"])
        #expect(help.succeeded && help.stdoutString.contains("usage: strata snapshot"))
        #expect(try StrataBinary.run(["gc", "--help"]).stdoutString.contains("--cache-max"))
        #expect(try StrataBinary.run(["--help"]).stdoutString.contains("snapshot  "))
        // Labels are kept.
        try s.check(["prepare", "--label", "a=1", "--label=b=2", "k"])
        #expect(try s.statJSON("k")["labels"] as? [String: String] == ["a": "1", "b": "2"])
        try s.check(["remove", "k"])
    }
}

enum SnapshotDirListing {
    static func names(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }
}

/// A value shared by concurrentPerform's iterations.
final class SnapshotTestBox<T>: @unchecked Sendable {
    private var stored: T
    private let lock = NSLock()
    init(_ value: T) { stored = value }
    var value: T { lock.lock(); defer { lock.unlock() }; return stored }
    func with(_ body: (inout T) -> Void) { lock.lock(); defer { lock.unlock() }; body(&stored) }
}
