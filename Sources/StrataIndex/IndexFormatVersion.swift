/// The layer index file format this build reads and writes (`strata --version` shows it: an
/// index of another version is rebuilt, never used).
public let indexFormatVersion: UInt32 = IndexFormat.version
