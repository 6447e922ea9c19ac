#if canImport(Glibc)
import Glibc
#endif
import StrataOCI
import StrataSystem
import StrataTestSupport
import Testing
@testable import StrataBundle

/// Stands in for `strata mount`: "mounting" writes the image's files into rootfs and
/// "unmounting" takes them away again, so the bundle logic is tested without FUSE.
private final class FakeMounter: Mounter {
    var files: [String: String]
    var mounted: Set<String> = []
    var mountError: BundleError?
    var unmountError: BundleError?
    var lastUpper: String??
    var lastWork: String??

    init(files: [String: String] = [:]) { self.files = files }

    func mount(image: String, at rootfs: String, upper: String?, work: String?) throws(BundleError) {
        lastUpper = .some(upper)
        lastWork = .some(work)
        if let mountError { throw mountError }
        for (path, text) in files {
            let full = rootfs + path
            try? FileIO.makeDirectories(String(full[..<full.lastIndex(of: "/")!]))
            try? FileIO.writeAtomically(full, Array(text.utf8))
        }
        mounted.insert(rootfs)
    }

    func unmount(_ rootfs: String) throws(BundleError) {
        if let unmountError { throw unmountError }
        _ = try? Command.check("/bin/rm", ["-rf", "--", rootfs + "/etc"])
        mounted.remove(rootfs)
    }

    func isMounted(_ rootfs: String) -> Bool { mounted.contains(rootfs) }
}

private func imageConfig(user: String? = nil, cmd: [String] = ["/bin/sh"]) -> ImageConfig {
    ImageConfig(architecture: "amd64", os: "linux", config: ContainerConfig(user: user, cmd: cmd), rootfs: .init(diffIDs: []))
}

private func entries(_ dir: String) -> [String] {
    guard let stream = opendir(dir) else { return [] }
    defer { closedir(stream) }
    var names: [String] = []
    while let e = readdir(stream) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names.sorted()
}

private func message(_ body: () throws -> Void) -> String {
    do { try body() } catch { return "\(error)" }
    return "(no error)"
}

@Test func createWritesConfigAndRecordThenRemoveUndoesAll() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let bundle = temp.child("b")
    let mounter = FakeMounter(files: ["/etc/passwd": "app:x:1000:1000::/:/bin/sh\n", "/etc/group": "g:x:7:app\n"])
    let record = try BundleBuilder.create(.init(image: "/img", config: imageConfig(user: "app"), directory: bundle,
                                                upper: .inBundle), mounter: mounter)
    #expect(record.state == .ready)
    #expect(record.upper == bundle + "/upper" && record.ownsUpper && record.createdBundleDirectory)
    #expect(mounter.lastUpper == .some(bundle + "/upper"))
    #expect(mounter.lastWork == .some(bundle + "/work"))
    #expect(entries(bundle) == [".strata-bundle", "config.json", "rootfs", "upper", "work"])
    let spec = try SpecJSON.decode(try FileIO.readAll(bundle + "/config.json"), what: "config.json")
    #expect(spec.process.user == .init(uid: 1000, gid: 1000, additionalGids: [7]))
    #expect(spec.root == .init(path: "rootfs", readonly: false))

    // A second bundle on the same directory is an error and changes nothing.
    let again = message { try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: bundle,
                                                         upper: .inBundle), mounter: mounter) }
    #expect(again.contains("already a strata bundle") && again.contains("--remove"))
    #expect(mounter.isMounted(bundle + "/rootfs"))
    #expect(entries(bundle) == [".strata-bundle", "config.json", "rootfs", "upper", "work"])

    try FileIO.writeAtomically(bundle + "/upper/written", Array("x".utf8))
    try temp.makeDirectory("b/work/index")
    try BundleBuilder.remove(directory: bundle, mounter: mounter)
    #expect(!FileIO.exists(bundle))
    #expect(mounter.mounted.isEmpty)
    #expect(message { try BundleBuilder.remove(directory: bundle, mounter: mounter) }.contains("not a strata bundle"))
}

@Test func userGivenUpperAndExistingDirectoryAreKept() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let bundle = try temp.makeDirectory("b")
    try FileIO.writeAtomically(bundle + "/notes", Array("mine".utf8))
    let upper = temp.child("my-upper")
    let mounter = FakeMounter()
    try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: bundle, upper: .directory(upper)),
                             mounter: mounter)
    #expect(FileIO.isDirectory(upper))
    #expect(mounter.lastUpper == .some(upper) && mounter.lastWork == .some(nil))
    try FileIO.writeAtomically(upper + "/kept", Array("x".utf8))
    try BundleBuilder.remove(directory: bundle, mounter: mounter)
    #expect(entries(bundle) == ["notes"])
    #expect(entries(upper) == ["kept"])
}

@Test func readOnlyBundleHasNoUpper() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let bundle = temp.child("b")
    let mounter = FakeMounter()
    let record = try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: bundle, upper: .none),
                                          mounter: mounter)
    #expect(record.upper == nil && mounter.lastUpper == .some(nil))
    let spec = try SpecJSON.decode(try FileIO.readAll(bundle + "/config.json"), what: "config.json")
    #expect(spec.root.readonly)
    #expect(entries(bundle) == [".strata-bundle", "config.json", "rootfs"])
    try BundleBuilder.remove(directory: bundle, mounter: mounter)
    #expect(!FileIO.exists(bundle))
}

@Test func failuresLeaveTheDirectoryAsItWas() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let bundle = temp.child("b")

    // The mount fails.
    let failing = FakeMounter()
    failing.mountError = BundleError("mounting /img failed: boom")
    #expect(message { try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: bundle,
                                                     upper: .inBundle), mounter: failing) }.contains("boom"))
    #expect(!FileIO.exists(bundle))

    // The user cannot be resolved: the mount is taken down again.
    let mounter = FakeMounter(files: ["/etc/passwd": "root:x:0:0::/:/bin/sh\n"])
    let text = message { try BundleBuilder.create(.init(image: "/img", config: imageConfig(user: "ghost"), directory: bundle,
                                                        upper: .inBundle), mounter: mounter) }
    #expect(text.contains("config.User \"ghost\""))
    #expect(mounter.mounted.isEmpty)
    #expect(!FileIO.exists(bundle))

    // A directory holding someone else's bundle is not touched.
    try temp.makeDirectory("theirs/rootfs")
    try FileIO.writeAtomically(temp.child("theirs/config.json"), Array("{}".utf8))
    let theirs = message { try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: temp.child("theirs"),
                                                          upper: .inBundle), mounter: mounter) }
    #expect(theirs.contains("config.json already exists"))
    #expect(entries(temp.child("theirs")) == ["config.json", "rootfs"])

    // An existing BUNDLE/upper is not adopted (removal would delete it).
    try temp.makeDirectory("c/upper")
    #expect(message { try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: temp.child("c"),
                                                     upper: .inBundle), mounter: mounter) }.contains("--upper"))
    #expect(entries(temp.child("c")) == ["upper"])
    try temp.makeDirectory("d/work")
    #expect(message { try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: temp.child("d"),
                                                     upper: .inBundle), mounter: mounter) }.contains("d/work already exists"))
    #expect(entries(temp.child("d")) == ["work"])
}

@Test func removeStopsWhenUnmountFails() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let bundle = temp.child("b")
    let mounter = FakeMounter()
    try BundleBuilder.create(.init(image: "/img", config: imageConfig(), directory: bundle, upper: .inBundle), mounter: mounter)
    mounter.unmountError = BundleError("unmounting busy")
    #expect(message { try BundleBuilder.remove(directory: bundle, mounter: mounter) }.contains("busy"))
    #expect(entries(bundle) == [".strata-bundle", "config.json", "rootfs", "upper", "work"])
    mounter.unmountError = nil
    try BundleBuilder.remove(directory: bundle, mounter: mounter)
    #expect(!FileIO.exists(bundle))
}

@Test func rootedReadsStayInsideTheRoot() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let root = try temp.makeDirectory("root")
    try temp.makeDirectory("root/etc")
    try temp.makeDirectory("root/data")
    try FileIO.writeAtomically(root + "/data/passwd", Array("inside\n".utf8))
    try FileIO.writeAtomically(temp.child("outside"), Array("outside\n".utf8))
    #expect(symlink("/data/passwd", root + "/etc/passwd") == 0)
    #expect(symlink("../../../../outside", root + "/etc/group") == 0)
    #expect(symlink("loop2", root + "/etc/loop1") == 0)
    #expect(symlink("loop1", root + "/etc/loop2") == 0)
    #expect(try RootedFile.read(root: root, path: "/etc/passwd") == Array("inside\n".utf8))
    // ".." stops at the root: ../../../../outside is /outside in the container, absent.
    #expect(try RootedFile.read(root: root, path: "/etc/group") == nil)
    #expect(try RootedFile.read(root: root, path: "/etc/shadow") == nil)
    #expect(try RootedFile.read(root: root, path: "/data/passwd/x") == nil)
    #expect(message { _ = try RootedFile.read(root: root, path: "/etc/loop1") }.contains("too many levels"))
    #expect(message { _ = try RootedFile.read(root: root, path: "/etc") }.contains("not a regular file"))
}

@Test func treeRemoverDoesNotFollowSymlinks() throws {
    let temp = try TempDirectory()
    defer { withExtendedLifetime(temp) {} }
    let keep = try temp.makeDirectory("keep")
    try FileIO.writeAtomically(keep + "/file", Array("x".utf8))
    let tree = try temp.makeDirectory("tree/a/b")
    try FileIO.writeAtomically(tree + "/f", Array("x".utf8))
    #expect(symlink(keep, temp.child("tree/a/link")) == 0)
    try TreeRemover.remove(temp.child("tree"))
    #expect(!FileIO.exists(temp.child("tree")))
    #expect(entries(keep) == ["file"])
}

@Test func mountArgumentsCarryUpperAndAllowOther() {
    let m = StrataProcessMounter(executable: "/x/strata", cache: "/c", platform: "linux/amd64")
    #expect(m.mountArguments(image: "/img:t", rootfs: "/b/rootfs", upper: "/b/upper", work: "/b/work")
            == ["mount", "--allow-other", "--cache", "/c", "--platform", "linux/amd64", "--upper", "/b/upper", "--work", "/b/work",
                "--", "/img:t", "/b/rootfs"])
    #expect(m.mountArguments(image: "/i", rootfs: "/r", upper: "/u", work: nil)
            == ["mount", "--allow-other", "--cache", "/c", "--platform", "linux/amd64", "--upper", "/u", "--", "/i", "/r"])
    #expect(StrataProcessMounter().mountArguments(image: "/img", rootfs: "/r", upper: nil, work: nil) == ["mount", "--allow-other", "--", "/img", "/r"])
}

@Test func mountInfoUnescapes() {
    #expect(MountTable.unescape(Array("/a\\040b\\011c".utf8)[...]) == "/a b\tc")
    #expect(MountTable.isMountPoint("/proc"))
}
