#if canImport(Glibc)
import Glibc
#endif
import StrataSystem

/// Sets an extended attribute without following symlinks (test fixtures plant them).
public func setExtendedAttribute(path: String, name: String, value: [UInt8]) throws {
    do { try ExtendedAttributes.set(.path(FileDescriptor.cName(Array(path.utf8))), name, value) } catch {
        throw HarnessError("lsetxattr \(name) on \(path): \(error.message)")
    }
}
