/// Where the checkpoint windows of a layer index come from when its file was installed without
/// them (a published index fetched from a registry: its windows section left a hole, fetched a
/// window at a time when a decode needs one). The remote mount registers one per such index
/// (`IndexWindows.register`); the implementation reads the published index blob by range.
public protocol IndexWindowSource: Sendable {
    /// The bytes `range` of the published index blob (the same offsets as in the cache file).
    func indexBytes(_ range: Range<UInt64>) throws -> [UInt8]
    /// The index blob, for errors: "sha256:…".
    var indexBlob: String { get }
}
