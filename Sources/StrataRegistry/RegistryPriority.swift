/// Who is waiting for a request. On-demand reads (a reader blocked in the file system) go
/// first: they may use every connection and are given a free one before any background
/// request, while background work (streams, prefetch, completing blobs) leaves one connection
/// free for them.
public enum RegistryPriority: Sendable, Hashable {
    case demand
    case background
}
