import StrataSystem

extension FSError {
    /// A failed system call answers the request with its errno: the one place a `SystemError`
    /// becomes a reply code (the FUSE adapter sends `code` as it is).
    public init(_ error: SystemError) { self.init(error.code) }
}
