/// Who is waiting for a request. On-demand reads (a reader blocked in the file system) go
/// first: they may use every connection and are given a free one before anything else. The
/// prefetch (a replayed list of what a start reads) comes next, then background work
/// (streams, completing blobs); both leave one connection free for on-demand reads.
public enum RegistryPriority: Sendable, Hashable, Comparable {
    case background
    case prefetch
    case demand
}
