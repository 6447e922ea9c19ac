import StrataSystem
#if canImport(Glibc)
import Glibc
#endif

extension FSError {
    /// A failed system call answers the request with its errno: the one place a `SystemError`
    /// becomes a reply code (the FUSE adapter sends `code` as it is). An EIO from the upper's
    /// own file system reaches a reader as EIO too, so it is logged here with its call and path.
    public init(_ error: SystemError) {
        if error.code == EIO { Log.error("EIO: upper directory: \(error)") }
        self.init(error.code)
    }
}
