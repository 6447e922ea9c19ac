#if canImport(Glibc)
import Glibc
#endif
import Foundation
import StrataSystem
import StrataTestSupport
import Testing

/// A container under runc keeps running, without one failed call, while its rootfs's server
/// is killed and restarted: read-only and writable bundles.
@Suite(.enabled(if: BundleTestSupport.available, "needs root, the strata binary, runc, umoci and busybox-static"),
       .serialized, .mountTimeLimit)
struct RestartRuntimeTests {
    /// Loops until /tmp/stop (a host directory) appears: reads a file and checks its bytes,
    /// lists a directory, keeps /etc/hello open; with WRITE, writes, syncs, renames and reads
    /// back. Any failure exits non-zero naming the step. /tmp/count shows progress.
    static let loop = #"""
    exec 3</etc/hello
    i=0
    while [ ! -e /tmp/stop ]; do
      [ "$(cat /etc/hello)" = "hello from the image" ] || { echo "read /etc/hello: $i" >&2; exit 1; }
      ls /bin >/dev/null || { echo "ls /bin: $i" >&2; exit 2; }
      if [ -n "$WRITE" ]; then
        echo "$i" > /new || { echo "write: $i" >&2; exit 3; }
        /bin/busybox sync || { echo "sync: $i" >&2; exit 4; }
        /bin/busybox mv /new /data || { echo "mv: $i" >&2; exit 5; }
        [ "$(cat /data)" = "$i" ] || { echo "read back: $i" >&2; exit 6; }
      fi
      i=$((i+1))
      echo "$i" > /tmp/count
    done
    echo "ran $i"
    """#

    @Test(arguments: [false, true])
    func containerLoopSurvivesKillsAndRestarts(_ writable: Bool) throws {
        let runtime = ContainerRuntime.runc
        try runtime.requireAvailable()
        let temp = try TempDirectory()
        defer { withExtendedLifetime(temp) {} }
        let image = try BusyboxImage.make(layout: temp.child("layout"), config: BusyboxImage.command(["/bin/sh", "-c", Self.loop])
            + (writable ? ["--config.env", "WRITE=1"] : []))
        let bundle = try StrataBundleFixture(image: image, directory: temp.child("bundle"), args: writable ? [] : ["--read-only"])
        defer { try? bundle.remove() }
        let shared = try temp.makeDirectory("shared")
        var config = try bundle.config()
        let mounts = config["mounts"] as? [[String: Any]] ?? []
        config["mounts"] = mounts + [["destination": "/tmp", "type": "bind", "source": shared, "options": ["rbind", "rw"]]]
        try bundle.writeConfig(config)

        let id = ContainerRuntime.containerID("restart")
        defer { runtime.delete(id) }
        let out = temp.child("out"), err = temp.child("err"), status = temp.child("status")
        let started = try Command.run("/bin/sh", ["-c", "('\(runtime.path)' run --bundle '\(bundle.directory)' \(id) >'\(out)' 2>'\(err)' </dev/null; echo $? >'\(status)') >/dev/null 2>&1 &"])
        #expect(started.status == 0)
        func count() -> Int { (try? FileIO.readAll(shared + "/count")).flatMap { Int(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0 }
        func advance() -> Bool {
            let target = count() + 3
            return Mounts.waitUntil(seconds: 60) { count() >= target || FileIO.exists(status) }
        }
        #expect(advance())
        for _ in 0..<2 {
            try RestartSupport.killServer(bundle.rootfs)
            #expect(advance())
            usleep(2_200_000)   // past the crash-loop window
            let r = try RestartSupport.restart(bundle.rootfs)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(advance())
            usleep(2_200_000)
        }
        try FileIO.writeAtomically(shared + "/stop", [])
        #expect(Mounts.waitUntil(seconds: 60) { FileIO.exists(status) })
        let exit = (try? FileIO.readAll(status)).map { String(decoding: $0, as: UTF8.self) } ?? "?"
        let errors = (try? FileIO.readAll(err)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(exit == "0\n", "exit \(exit): \(errors)")
        #expect((try? FileIO.readAll(out)).map { String(decoding: $0, as: UTF8.self).hasPrefix("ran ") } == true)
        if writable {
            #expect(try FileIO.readAll(bundle.rootfs + "/data") == Array("\(count() - 1)\n".utf8))
        }
        try bundle.remove()
    }
}
