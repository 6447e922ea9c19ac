#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// Two containers from one image at once, each on its own active snapshot (what a runtime
/// gets from `strata snapshot mounts`), each committing its own changes: the commits hold
/// what their container did and nothing of the other's.
@Suite(.enabled(if: SnapshotStoreFixture.available && BundleTestSupport.available,
                "needs root, /dev/fuse, the strata binary, runc, umoci and busybox-static"),
       .serialized, .mountTimeLimit)
struct SnapshotRuntimeTests {
    /// A bundle whose root is the snapshot's mountpoint: runc's default spec with our command.
    static func bundle(_ dir: String, rootfs: String, command: String) throws {
        try FileIO.makeDirectories(dir)
        try Command.check(ContainerRuntime.runc.path, ["spec", "--bundle", dir])
        let path = dir + "/config.json"
        var config = try jsonObject(try FileIO.readAll(path))
        config["root"] = ["path": rootfs, "readonly": false]
        var process: [String: Any] = try field(config, "process")
        process["terminal"] = false
        process["args"] = ["/bin/sh", "-c", command]
        config["process"] = process
        try FileIO.writeAtomically(path, Array(try JSONSerialization.data(withJSONObject: config)))
    }

    @Test(arguments: BundleTestSupport.runtimes)
    func twoContainersOnOneImageCommitTheirOwnChanges(_ runtime: ContainerRuntime) throws {
        try runtime.requireAvailable()
        let s = try SnapshotStoreFixture()
        defer { try? s.close() }
        let image = try BusyboxImage.make(layout: s.temp.child("layout"), config: BusyboxImage.command(["true"]))
        try s.check(["import", image, "busybox"])
        try s.check(["prepare", "ctr-a", "busybox"])
        try s.check(["prepare", "ctr-b", "busybox"])
        let rootA = try s.mount("ctr-a")
        let rootB = try s.mount("ctr-b")
        #expect(rootA != rootB)

        // Both sleep, so they run at the same time; each then reads back its own writes.
        try Self.bundle(s.temp.child("bundle-a"), rootfs: rootA,
                        command: "echo from-a > /etc/who && rm /etc/hello && mkdir /a-only && sleep 1 && cat /etc/who && ls /etc")
        try Self.bundle(s.temp.child("bundle-b"), rootfs: rootB,
                        command: "echo from-b > /etc/who && echo b >> /etc/passwd && sleep 1 && cat /etc/who /etc/hello")
        let ids = ["a": ContainerRuntime.containerID("snap-a"), "b": ContainerRuntime.containerID("snap-b")]
        defer { ids.values.forEach(runtime.delete) }
        let results = SnapshotTestBox([String: CommandResult]())
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            let name = i == 0 ? "a" : "b"
            let r = try? runtime.run(bundle: s.temp.child("bundle-\(name)"), id: ids[name]!, timeout: 60)
            results.with { $0[name] = r }
        }
        let a = results.value["a"], b = results.value["b"]
        #expect(a?.succeeded == true, "\(runtime) a: \(a?.stderr ?? "did not run")")
        #expect(b?.succeeded == true, "\(runtime) b: \(b?.stderr ?? "did not run")")
        #expect(a?.stdoutString.hasPrefix("from-a\n") == true && a?.stdoutString.contains("hello") == false)
        #expect(b?.stdoutString == "from-b\nhello from the image\n")
        ids.values.forEach(runtime.delete)

        try s.check(["commit", "--message", "container a", "img-a", "ctr-a"])
        try s.check(["commit", "--message", "container b", "img-b", "ctr-b"])
        let layerA: String = try field(field(s.statJSON("img-a"), "layer", as: [String: Any].self), "digest")
        let layerB: String = try field(field(s.statJSON("img-b"), "layer", as: [String: Any].self), "digest")
        #expect(layerA != layerB)
        #expect(try s.statJSON("img-a")["parent"] as? String == "busybox")

        try s.check(["view", "view-a", "img-a"])
        try s.check(["view", "view-b", "img-b"])
        let viewA = try s.mount("view-a")
        let viewB = try s.mount("view-b")
        func read(_ path: String) -> String? { (try? FileIO.readAll(path)).map { String(decoding: $0, as: UTF8.self) } }
        #expect(read(viewA + "/etc/who") == "from-a\n")
        #expect(!FileIO.exists(viewA + "/etc/hello") && FileIO.isDirectory(viewA + "/a-only"))
        #expect(read(viewA + "/etc/passwd") == BusyboxImage.passwd)
        #expect(read(viewB + "/etc/who") == "from-b\n")
        #expect(read(viewB + "/etc/hello") == "hello from the image\n" && !FileIO.exists(viewB + "/a-only"))
        #expect(read(viewB + "/etc/passwd") == BusyboxImage.passwd + "b\n")
        // The committed image runs again: a container on a snapshot of img-a sees a's world.
        try s.check(["prepare", "ctr-c", "img-a"])
        let rootC = try s.mount("ctr-c")
        try Self.bundle(s.temp.child("bundle-c"), rootfs: rootC, command: "cat /etc/who; test -e /etc/hello || echo no-hello")
        let id = ContainerRuntime.containerID("snap-c")
        defer { runtime.delete(id) }
        let c = try runtime.run(bundle: s.temp.child("bundle-c"), id: id)
        #expect(c.succeeded, "\(runtime) c: \(c.stderr)")
        #expect(c.stdoutString == "from-a\nno-hello\n")
        runtime.delete(id)
        try s.close()
    }
}
