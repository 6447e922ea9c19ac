/// The paths of a bundle directory, all absolute.
public struct BundleLayout: Sendable, Equatable {
    public var directory: String
    public var rootfs: String { directory + "/rootfs" }
    public var config: String { directory + "/config.json" }
    public var defaultUpper: String { directory + "/upper" }
    public var work: String { directory + "/work" }
    public var record: String { directory + "/" + BundleRecord.fileName }

    /// `directory` must be absolute (the CLI makes it so); a trailing '/' is dropped.
    public init(directory: String) {
        var d = directory
        while d.count > 1 && d.hasSuffix("/") { d.removeLast() }
        self.directory = d
    }
}
