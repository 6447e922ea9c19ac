/// StrataSeekable owns the seekable layer formats that carry their own table of contents:
/// eStargz (gzip) and zstd:chunked. Each format's bytes (footer, annotations, TOC schema) are
/// written down once here; the readers turn a TOC into a `TableOfContents` the index builds on,
/// and the writers produce such layers from a tar stream.
public enum StrataSeekable {}
