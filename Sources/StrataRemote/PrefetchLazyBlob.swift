import StrataIndex

// The registry's lazy blobs replay prefetch lists: as prefetch, behind on-demand reads.
extension LazyBlob: PrefetchableBlob {
    public func prefetch(_ range: Range<UInt64>) throws {
        try ensure(range, purpose: .prefetch)
    }
}
