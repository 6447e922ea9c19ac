/// The `type` strings of a TOC entry; eStargz and zstd:chunked use the same words (both come from CRFS).
/// Entries keep the raw string so a reader can name an unknown type in its error.
public enum TOCEntryType: String, Sendable, CaseIterable {
    case reg, dir, symlink, hardlink, char, block, fifo
    /// A regular file's second and later chunks: only name, offset and the chunk fields are set.
    case chunk
}
