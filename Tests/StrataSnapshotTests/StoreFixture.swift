#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSnapshot
import StrataSystem
import StrataTestSupport

/// No FUSE here: a mounter that only remembers what it was asked. The store's rules, its
/// files and its crash-safety do not depend on the mount itself (the StrataMountTests do).
final class FakeMounter: SnapshotMounter, @unchecked Sendable {
    var mounted: Set<String> = []
    var calls: [String] = []
    func mount(image: String, at mountpoint: String, upper: String?, work: String?, cache: String) throws {
        calls.append("mount \(image) \(mountpoint) upper=\(upper ?? "-")")
        mounted.insert(mountpoint)
    }
    func unmount(_ mountpoint: String) throws {
        calls.append("unmount \(mountpoint)")
        mounted.remove(mountpoint)
    }
    func isMounted(_ mountpoint: String) -> Bool { mounted.contains(mountpoint) }
}

/// A store in a temporary directory and a two-layer image to import into it.
final class StoreFixture {
    let temp: TempDirectory
    let mounter = FakeMounter()
    let store: SnapshotStore
    var root: String { temp.child("root") }
    var image: String { temp.child("image") + ":v1" }

    init() throws {
        temp = try TempDirectory(prefix: "strata-snapshot-unit-")
        store = SnapshotStore(root: temp.child("root"), mounter: mounter)
        let builder = try ImageBuilder(layout: temp.child("image"))
        try builder.addLayer(entries: [Items.dir("etc"), Items.file("etc/hello", "hello\n")])
        try builder.addLayer(entries: [Items.file("etc/second", "2\n")])
        try builder.write(tag: "v1", config: .init(cmd: ["/bin/sh"]))
    }

    /// Writes `content` at `path` inside the active snapshot's upper, as a container would.
    func write(_ key: String, _ path: String, _ content: String) throws {
        let upper = root + "/snapshots/\(try store.stat(key).id)/upper"
        let full = upper + "/" + path
        try FileIO.makeDirectories(String(full[..<full.lastIndex(of: "/")!]))
        try FileIO.writeAtomically(full, Array(content.utf8))
    }

    func metadata() throws -> String { String(decoding: try FileIO.readAll(root + "/metadata.json"), as: UTF8.self) }
}

func expectError(_ kind: SnapshotError.Kind, _ body: () throws -> Void) -> SnapshotError? {
    do {
        try body()
        return nil
    } catch let error as SnapshotError {
        return error.kind == kind ? error : nil
    } catch {
        return nil
    }
}
