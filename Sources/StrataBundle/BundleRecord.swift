/// `BUNDLE/.strata-bundle`: what `strata bundle` made, so removal takes away exactly that
/// and nothing a user put there. Created with O_EXCL before anything else, it is also the
/// lock that makes a second `strata bundle` on the same directory an error.
public struct BundleRecord: Codable, Equatable, Sendable {
    public static let fileName = ".strata-bundle"
    public static let currentVersion = 1

    public enum State: String, Codable, Sendable {
        /// Written first; a record left in this state means a `bundle` was interrupted.
        case creating
        case ready
    }

    public var version: Int
    public var state: State
    public var image: String
    public var manifestDigest: String?
    /// The bundle directory did not exist before: removal removes it too.
    public var createdBundleDirectory: Bool
    public var createdRootfs: Bool
    /// Absolute path of the writable upper; nil for a read-only bundle.
    public var upper: String?
    /// True when the upper is BUNDLE/upper made by `bundle`; a user-given one is kept.
    public var ownsUpper: Bool
    /// The mount's scratch directory for copy-ups: BUNDLE/work beside BUNDLE/upper (same file
    /// system, as it must be), owned like it. Nil for a user-given upper, whose work
    /// directory `strata mount` places beside it and which stays with it.
    public var work: String?
    public var createdConfig: Bool

    public init(image: String, manifestDigest: String? = nil, createdBundleDirectory: Bool) {
        version = BundleRecord.currentVersion
        state = .creating
        self.image = image
        self.manifestDigest = manifestDigest
        self.createdBundleDirectory = createdBundleDirectory
        createdRootfs = false
        upper = nil
        ownsUpper = false
        work = nil
        createdConfig = false
    }
}
