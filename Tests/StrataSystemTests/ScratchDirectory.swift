import Glibc
import StrataSystem

/// A fresh `/tmp/strata-test-XXXXXX` (the prefix scripts/test cleans after a crashed run),
/// removed by descriptors when the object goes away. This target depends on StrataSystem
/// alone, so it cannot use StrataTestSupport's TempDirectory.
final class ScratchDirectory {
    let path: String
    let fd: FileDescriptor

    init() throws {
        path = try FileIO.makeTemporaryDirectory(in: "/tmp", prefix: "strata-test-")
        fd = try FileDescriptor.openat(.currentDirectory, path, O_RDONLY | O_DIRECTORY)
    }

    func child(_ name: String) -> String { path + "/" + name }

    deinit {
        fd.close()
        try? FileTree.remove(path, oneFileSystem: true)
    }
}
